/* The CPU kernels (VEC > 1 mappings): the fused rows that cache the exps,
 * the lanes kernels (a row per SIMD lane), softmax with the exps cached
 * and the batch kernels (16 rows per item finished together), each forced
 * at small sizes and checked against the host reference and the paths
 * without them, special rows, bitwise repeatability. */
#include "fused_cases.h"

/* The CPU fused kernels that cache the exps (a row per item, blocks of
 * columns with their own maxima, rescaled at the end; the cache is the
 * gradient for f32, local memory for f16/bf16): short blocks forced so
 * that rows span many of them, the special rows above (f32: the host
 * rounds nothing), in place and not, against the host and against the
 * path without the cache; a row of 2^20 + 17 (blocks longer than the
 * default, at most 1024 of them); bitwise repeatable. */
static void test_gcache(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const size_t cols[] = {33, 100, 1000, 4097};
    static const unsigned blocks[] = {32, 64, 96, 1024};
    static const size_t rows[] = {1, 9, 64};
    unsigned k = 0;
    for (size_t i = 0; i < sizeof cols / sizeof *cols; ++i)
        for (size_t b = 0; b < sizeof blocks / sizeof *blocks; ++b, ++k) {
            /* f32: the cache is the gradient; f16/bf16: local memory */
            hx_case c = hx_base_case(rows[k % 3], cols[i],
                                  (clxent_dtype)(CLXENT_F32 + (k / 3) % 3),
                                  6000 + k);
            options_k(&c, k);
            c.check = k % 4 == 3 ? CLXENT_CHECK_DEFERRED : CLXENT_CHECK_SYNC;
            hx_data d = hx_make(&c);
            if (!c.probs && k % 2 == 0 && c.dt == CLXENT_F32) {
                c.ignore = 1;
                block_specials(&c, &d);
            }
            char name[256], tag[48];
            snprintf(tag, sizeof tag, " gcache block=%u VEC=%u", blocks[b],
                     k % 3 == 0 ? 4 : k % 3 == 1 ? 8 : 16);
            hx_name(&c, name, sizeof name);
            strncat(name, tag, sizeof name - strlen(name) - 1);
            tune_reset();
            tune_rows_only();
            tune_knob(TK_gcache, 2);
            hx_out want = dev_run(&c, &d, HX_ROUTE_FUSED);
            hx_out ref = hx_run(fx_host(), &c, &d, HX_ROUTE_FUSED);
            tune_reset();
            tune_rows_only();
            tune_knob(TK_gcache_block, blocks[b]);
            tune_knob(TK_vec, k % 3 == 0 ? 4 : k % 3 == 1 ? 8 : 0);
            hx_expect(OPS_CE_FUSED, "(cached ");
            for (int route = 0; route < 2; ++route) {
                hx_out got = dev_run(&c, &d, route);
                hx_compare_out(&c, &got, &ref, name);
                hx_compare_out(&c, &got, &want, name);
                hx_out_free(&got);
            }
            hx_expect_none();
            hx_out_free(&want);
            hx_out_free(&ref);
            hx_free(&d);
        }
    tune_reset();
    hx_case c = hx_base_case(1, (1u << 20) + 17, CLXENT_F32, 6100);
    c.red = CLXENT_REDUCTION_NONE;
    c.eps = 0.1f;
    hx_data d = hx_make(&c);
    d.x[c.C - 3] = 30.0f; /* the maximum in the last block */
    hx_out ref = hx_run(fx_host(), &c, &d, HX_ROUTE_FUSED);
    tune_knob(TK_split_chunks, 1); /* one row would be split otherwise */
    hx_out got = dev_run(&c, &d, HX_ROUTE_FUSED_IN_PLACE);
    hx_compare_out(&c, &got, &ref, "gcache 1x(2^20+17)");
    hx_out_free(&got);
    hx_out_free(&ref);
    hx_free(&d);
    /* bf16 rows whose exps need most of PoCL's 1 MiB of local memory
     * (800 KB: one item per group), in place and not */
    c = hx_base_case(2, 200003, CLXENT_BF16, 6150);
    c.eps = 0.05f;
    d = hx_make(&c);
    d.x[c.C - 5] = 25.0f;
    ref = hx_run(fx_host(), &c, &d, HX_ROUTE_FUSED);
    for (int route = 0; route < 2; ++route) {
        got = dev_run(&c, &d,
                      route ? HX_ROUTE_FUSED_IN_PLACE : HX_ROUTE_FUSED);
        hx_compare_out(&c, &got, &ref, "gcache 2x200003 bf16");
        hx_out_free(&got);
    }
    hx_out_free(&ref);
    hx_free(&d);
    c = hx_base_case(5, 3000, CLXENT_F32, 6200);
    options_k(&c, 5);
    tune_knob(TK_gcache_block, 64);
    d = hx_make(&c);
    assert_repeatable(&c, &d, HX_ROUTE_FUSED);
    hx_free(&d);
    tune_reset();
}

/* The lanes kernels (small C on CPUs with VEC > 1, a row per SIMD lane:
 * the PoCL default for C <= 120, softmax C <= 96, backward C <= 32):
 * forward, fused, backward from the lse (in place and not) and the row
 * primitives, every dtype and option,
 * VEC 16 (transposed blocks) and 4/8 (gathers), row counts around the
 * block size, strided and offset layouts, special values, repeatability. */
static const size_t lanes_cols[] = {1,  3,  10, 16, 17,  31,
                                    32, 33, 64, 97, 119, 120};
static const size_t lanes_rows[] = {1, 15, 17, 100};
static const unsigned lanes_vecs[] = {16, 4, 8};

/* The knobs of grid case k, its tag into tag: the lanes kernels (batch 0:
 * VEC 16, 4 and 8 in turn, the batch kernels' range closed) or the batch
 * kernels forced on (VEC 16); the runs must show the kernels forced. */
static void cpu_knobs(int batch, unsigned k, char *tag, size_t size) {
    tune_reset();
    hx_expect_none();
    if (batch) {
        tune_knob(TK_batch, 1);
        tune_knob(TK_vec, 16);
        snprintf(tag, size, " batch");
        hx_expect(OPS_CE_FUSED, "(batch");
        hx_expect(OPS_CE_FORWARD, "(batch");
        hx_expect(OPS_LOG_SOFTMAX, "(batch");
        hx_expect(OPS_SOFTMAX, "(batch");
    } else {
        /* every lanes range open to the kernels' limit, whatever the
         * device's tuning says */
        static const char *const lanes[] = {"lanes_cmax",
                                            "lanes_log_softmax_cmax",
                                            "lanes_softmax_cmax",
                                            "lanes_xent_cmax"};
        for (int i = 0; i < 4; ++i) tune_param(lanes[i], 128);
        tune_knob(TK_batch, 2);
        tune_knob(TK_vec, lanes_vecs[k % 3]);
        snprintf(tag, size, " lanes VEC=%u", lanes_vecs[k % 3]);
        hx_expect(OPS_CE_FUSED, "(lanes ");
        hx_expect(OPS_CE_FORWARD, "(lanes ");
        hx_expect(OPS_ROW_MAX, "(lanes ");
        hx_expect(OPS_ROW_EXPSUM, "(lanes ");
        hx_expect(OPS_LOG_SOFTMAX, "(lanes ");
        hx_expect(OPS_SOFTMAX, "(lanes ");
    }
}

/* Grid case k of a kernel that takes class indices (the knobs set by the
 * caller): options from k, the four routes against the host, then (f32:
 * the host rounds nothing) the special rows; then, with repeat, each route
 * twice, bitwise. */
static void index_case(clxent_context *dev, size_t R, size_t C, unsigned k,
                       uint64_t seed, int repeat, const char *tag) {
    hx_case c = hx_base_case(R, C, (clxent_dtype)(CLXENT_F32 + k % 3), seed);
    options_k(&c, k);
    c.probs = 0;
    c.ignore = c.ignore || k % 5 == 0;
    c.check = k % 4 == 3 ? CLXENT_CHECK_DEFERRED : CLXENT_CHECK_SYNC;
    char name[256];
    hx_name(&c, name, sizeof name);
    strncat(name, tag, sizeof name - strlen(name) - 1);
    hx_data d = hx_make(&c);
    lanes_xent(dev, &c, &d, name);
    if (repeat)
        for (int route = 0; route < 4; ++route)
            assert_repeatable(&c, &d, route);
    if (c.dt == CLXENT_F32 && c.R >= 7) {
        c.ignore = 1;
        lanes_specials(&c, &d);
        strncat(name, " special", sizeof name - strlen(name) - 1);
        lanes_xent(dev, &c, &d, name);
    }
    hx_free(&d);
}

static void test_lanes_xent(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    unsigned k = 0;
    for (size_t i = 0; i < sizeof lanes_cols / sizeof *lanes_cols; ++i)
        for (size_t j = 0; j < sizeof lanes_rows / sizeof *lanes_rows;
             ++j, ++k) {
            char tag[32];
            cpu_knobs(0, k, tag, sizeof tag);
            index_case(dev, lanes_rows[j], lanes_cols[i], k, 5000 + k,
                       k == 21, tag);
        }
    tune_reset();
}

/* Grid case k of the row primitives (the knobs set by the caller):
 * against the host, bitwise repeatable; special: f32 with the special
 * rows (needs R >= 7). */
static void prims_case(clxent_context *dev, size_t R, size_t C, unsigned k,
                       uint64_t seed, int special, const char *tag) {
    hx_case c = hx_base_case(
        R, C, special ? CLXENT_F32 : (clxent_dtype)(CLXENT_F32 + k % 3),
        seed);
    clxent_dtype out_dt = (clxent_dtype)(CLXENT_F32 + (k + 1) % 3);
    hx_data d = hx_make(&c);
    if (special) lanes_specials(&c, &d);
    char name[128];
    snprintf(name, sizeof name, "%zux%zu %s -> %s%s%s", R, C,
             clxent_dtype_name(c.dt), clxent_dtype_name(out_dt), tag,
             special ? " special" : "");
    float *ref[4], *got[4], *again[4];
    lanes_prims(fx_host(), d.x, R, C, c.dt, out_dt, NULL, ref);
    lanes_prims(dev, d.x, R, C, c.dt, out_dt, ref[0], got);
    lanes_prims(dev, d.x, R, C, c.dt, out_dt, ref[0], again);
    hx_compare(got[0], ref[0], R, 0.0, 0.0, CLXENT_F32, "row_max", name);
    hx_compare(got[1], ref[1], R, 0.0, 1.2e-6, CLXENT_F32, "row_expsum",
               name);
    hx_compare(got[2], ref[2], R * C, 1e-6, 1.2e-7 * 4, out_dt, "log_softmax",
               name);
    hx_compare(got[3], ref[3], R * C, 1e-6, 0.0, out_dt, "softmax", name);
    /* bitwise repeatable */
    assert_memory_equal(got[0], again[0], R * sizeof(float));
    assert_memory_equal(got[1], again[1], R * sizeof(float));
    assert_memory_equal(got[2], again[2], R * C * sizeof(float));
    assert_memory_equal(got[3], again[3], R * C * sizeof(float));
    prims_free(ref);
    prims_free(got);
    prims_free(again);
    hx_free(&d);
}

static void test_lanes_primitives(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    unsigned k = 0;
    for (size_t i = 0; i < sizeof lanes_cols / sizeof *lanes_cols; ++i)
        for (size_t j = 0; j < sizeof lanes_rows / sizeof *lanes_rows;
             ++j, ++k)
            for (int special = 0; special < 2; ++special) {
                if (special && lanes_rows[j] < 7) continue;
                char tag[32];
                cpu_knobs(0, k, tag, sizeof tag);
                prims_case(dev, lanes_rows[j], lanes_cols[i], k, 5200 + k,
                           special, tag);
            }
    tune_reset();
}

/* Softmax with the exps cached (sm_cached_g into an f32 output,
 * sm_cached_l in local memory for 16-bit outputs): short blocks forced so
 * that rows span many of them, the special rows of block_specials, against
 * the host and against the path without the cache, bitwise repeatable;
 * then a row of 2^20 + 17 (longer blocks, the maximum in the last one)
 * into f32 and bf16 (too long for local memory: the rows path). */
static void test_softmax_cached(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const size_t cols[] = {65, 100, 1000, 4097};
    static const unsigned blocks[] = {32, 64, 96, 1024};
    static const size_t rows[] = {1, 9, 64};
    unsigned k = 0;
    for (size_t i = 0; i < sizeof cols / sizeof *cols; ++i)
        for (size_t b = 0; b < sizeof blocks / sizeof *blocks; ++b, ++k) {
            size_t R = rows[k % 3], C = cols[i];
            hx_case c = hx_base_case(R, C, (clxent_dtype)(CLXENT_F32 + k % 3),
                                  8000 + k);
            clxent_dtype out_dt = (clxent_dtype)(CLXENT_F32 + (k / 3) % 3);
            hx_data d = hx_make(&c);
            if (k % 2 == 0) block_specials(&c, &d);
            char name[128];
            snprintf(name, sizeof name, "%zux%zu %s -> %s block=%u VEC=%u",
                     R, C, clxent_dtype_name(c.dt), clxent_dtype_name(out_dt),
                     blocks[b], k % 3 == 0 ? 4 : k % 3 == 1 ? 8 : 16);
            float *ref[4], *want[4], *got[4], *again[4];
            lanes_prims(fx_host(), d.x, R, C, c.dt, out_dt, NULL, ref);
            tune_reset();
            tune_rows_only();
            tune_knob(TK_gcache, 2);
            lanes_prims(dev, d.x, R, C, c.dt, out_dt, ref[0], want);
            tune_reset();
            tune_rows_only();
            tune_knob(TK_gcache, 1);
            tune_knob(TK_split_chunks, 1);
            tune_knob(TK_gcache_block, blocks[b]);
            tune_knob(TK_vec, k % 3 == 0 ? 4 : k % 3 == 1 ? 8 : 16);
            hx_expect(OPS_SOFTMAX, "(cached ");
            lanes_prims(dev, d.x, R, C, c.dt, out_dt, ref[0], got);
            lanes_prims(dev, d.x, R, C, c.dt, out_dt, ref[0], again);
            hx_expect_none();
            hx_compare(got[3], ref[3], R * C, 1e-6, 0.0, out_dt, "softmax",
                       name);
            hx_compare(got[3], want[3], R * C, 1e-6, 0.0, out_dt, "softmax",
                       name);
            assert_memory_equal(got[3], again[3], R * C * sizeof(float));
            prims_free(ref);
            prims_free(want);
            prims_free(got);
            prims_free(again);
            hx_free(&d);
        }
    /* one long row into f32 and bf16; and into bf16 a row whose exps
     * need most of PoCL's 1 MiB of local memory (800 KB) */
    for (int o = 0; o < 3; ++o) {
        tune_reset();
        tune_knob(TK_split_chunks, 1);
        size_t C = o < 2 ? (1u << 20) + 17 : 200003;
        hx_case c = hx_base_case(1, C, CLXENT_F32, 8100 + o);
        hx_data d = hx_make(&c);
        d.x[c.C - 3] = 30.0f;
        clxent_dtype out_dt = o ? CLXENT_BF16 : CLXENT_F32;
        float *ref[4], *got[4];
        lanes_prims(fx_host(), d.x, 1, c.C, c.dt, out_dt, NULL, ref);
        lanes_prims(dev, d.x, 1, c.C, c.dt, out_dt, ref[0], got);
        static const char *const names[] = {
            "1x(2^20+17)", "1x(2^20+17) -> bf16", "1x200003 -> bf16"};
        hx_compare(got[3], ref[3], c.C, 1e-6, 0.0, out_dt, "softmax",
                   names[o]);
        prims_free(ref);
        prims_free(got);
        hx_free(&d);
    }
    tune_reset();
}

/* The batch kernels' grid: column counts around the vector width and the
 * default range, row counts around the 16 rows of an item. */
static const size_t batch_cols[] = {1, 16, 17, 65, 100, 130, 257, 1024};
static const size_t batch_rows[] = {1, 15, 16, 17, 100};

/* The batch kernels (xent_batch.cl: 16 rows per item, VEC 16, class
 * indices; the PoCL default for fused f32 and forward with 64 < C <=
 * 1024), forced on at every C: every dtype (fused 16-bit takes the row
 * kernels, forward the batch kernel), weights, label smoothing,
 * ignore_index, z-loss, every reduction, grad_out, in place; row counts
 * around 16, rows ending in a partial vector, strided and offset layouts,
 * special rows (masked classes with smoothing: an infinite loss);
 * bitwise repeatable. */
static void test_batch_xent(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    unsigned k = 0;
    for (size_t i = 0; i < sizeof batch_cols / sizeof *batch_cols; ++i)
        for (size_t j = 0; j < sizeof batch_rows / sizeof *batch_rows;
             ++j, ++k) {
            char tag[32];
            cpu_knobs(1, k, tag, sizeof tag);
            index_case(dev, batch_rows[j], batch_cols[i], k, 9000 + k,
                       k == 29 || k == 31, tag);
        }
    tune_reset();
}

/* log_softmax and softmax with the batch kernel (softmax.cl's sm_batch;
 * the PoCL default for 96 < C <= 1024) forced on at every C: every input
 * and output dtype (softmax into f32 caches the exps in the output, into
 * 16-bit computes them again), rows around 16, partial vectors, special
 * rows, repeatable. */
static void test_batch_primitives(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    unsigned k = 0;
    for (size_t i = 0; i < sizeof batch_cols / sizeof *batch_cols; ++i)
        for (size_t j = 0; j < sizeof batch_rows / sizeof *batch_rows;
             ++j, ++k)
            for (int special = 0; special < 2; ++special) {
                if (special && batch_rows[j] < 7) continue;
                char tag[32];
                cpu_knobs(1, k, tag, sizeof tag);
                prims_case(dev, batch_rows[j], batch_cols[i], k, 9200 + k,
                           special, tag);
            }
    tune_reset();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcache),
        cmocka_unit_test(test_lanes_xent),
        cmocka_unit_test(test_lanes_primitives),
        cmocka_unit_test(test_softmax_cached),
        cmocka_unit_test(test_batch_xent),
        cmocka_unit_test(test_batch_primitives),
    };
    return cmocka_run_group_tests(tests, NULL, fx_group_teardown);
}
