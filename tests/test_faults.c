/* Device faults. Every OpenCL call in the library goes through the
 * fault-injection seam (internal.h: CLX_CL, clx_fault_arm). A full loss +
 * gradient sequence (context, buffers, writes, fused cross-entropy,
 * forward, backward, finish, reads, releases, destroy) is run once to
 * count its OpenCL calls; then, for every k, the k-th call is made to fail.
 * Each run must either report an error (and then its context must work
 * again once the fault is gone, or be a failed context that only destroys)
 * or, if the library tolerates that failure, give bitwise the clean
 * results. Nothing may crash; leaks are caught by running this test under
 * the sanitizer build (tools/ci_hardening.sh). Also: allocations beyond
 * the device's limits give OUT_OF_MEMORY. */
#include "fixtures.h"
#include "core/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define R 5
#define C 37

typedef struct outputs {
    float loss_fused;
    float lse_fused[R];
    float grad_fused[R * C];
    float loss_fwd[R];
    float lse_fwd[R];
    float grad_bwd[R * C];
} outputs;

static float X[R * C];
static int32_t Y[R] = {3, 0, -100, 36, 17};
static const char *SPEC; /* the device under test */

#define TRY(call)                                                              \
    do {                                                                       \
        if (st == CLXENT_STATUS_OK) st = (call);                               \
    } while (0)

/* Everything after context creation and before destroy. Releases what it
 * created whatever happens; returns the first failure. */
static clxent_status ops(clxent_context *ctx, outputs *o) {
    enum { BX, BY, BLOSS, BLSE, BGRAD, BLOSS2, BLSE2, BGRAD2, NB };
    static const size_t bytes[NB] = {sizeof X, sizeof Y, 4, 4 * R,
                                     sizeof X, 4 * R, 4 * R, sizeof X};
    clxent_buffer *b[NB] = {0};
    clxent_status st = CLXENT_STATUS_OK;
    memset(o, 0, sizeof *o);
    for (int i = 0; i < NB; ++i) TRY(clxent_buffer_create(ctx, bytes[i], &b[i]));
    TRY(clxent_buffer_write(ctx, b[BX], 0, sizeof X, X));
    TRY(clxent_buffer_write(ctx, b[BY], 0, sizeof Y, Y));

    clxent_matrix x = clxent_matrix_of(b[BX], R, C, CLXENT_F32);
    clxent_matrix g = clxent_matrix_of(b[BGRAD], R, C, CLXENT_F32);
    clxent_matrix g2 = clxent_matrix_of(b[BGRAD2], R, C, CLXENT_F32);
    clxent_targets t;
    memset(&t, 0, sizeof t);
    t.indices = clxent_vector_of(b[BY], R, CLXENT_I32);
    clxent_vector loss = clxent_vector_of(b[BLOSS], 1, CLXENT_F32);
    clxent_vector lse = clxent_vector_of(b[BLSE], R, CLXENT_F32);
    clxent_vector loss2 = clxent_vector_of(b[BLOSS2], R, CLXENT_F32);
    clxent_vector lse2 = clxent_vector_of(b[BLSE2], R, CLXENT_F32);
    clxent_loss_options mean, none;
    clxent_loss_options_init(&mean);
    mean.label_smoothing = 0.1f;
    none = mean;
    none.reduction = CLXENT_REDUCTION_NONE;
    none.z_loss = 1e-3f;

    TRY(clxent_cross_entropy(ctx, &x, &t, NULL, &mean, NULL, &loss, &lse, &g,
                             NULL));
    TRY(clxent_cross_entropy_forward(ctx, &x, &t, NULL, &none, &loss2, &lse2,
                                     NULL));
    TRY(clxent_cross_entropy_backward(ctx, &x, &t, NULL, &mean, &lse2, NULL,
                                      &g2, NULL));
    TRY(clxent_finish(ctx));
    TRY(clxent_buffer_read(ctx, b[BLOSS], 0, 4, &o->loss_fused));
    TRY(clxent_buffer_read(ctx, b[BLSE], 0, 4 * R, o->lse_fused));
    TRY(clxent_buffer_read(ctx, b[BGRAD], 0, sizeof X, o->grad_fused));
    TRY(clxent_buffer_read(ctx, b[BLOSS2], 0, 4 * R, o->loss_fwd));
    TRY(clxent_buffer_read(ctx, b[BLSE2], 0, 4 * R, o->lse_fwd));
    TRY(clxent_buffer_read(ctx, b[BGRAD2], 0, sizeof X, o->grad_bwd));
    for (int i = 0; i < NB; ++i) clxent_buffer_release(b[i]);
    return st;
}

/* The whole sequence up to (not including) destroy. */
static clxent_status sequence(clxent_context **ctx, outputs *o) {
    *ctx = NULL;
    clxent_status st = clxent_context_create(SPEC, ctx);
    if (st == CLXENT_STATUS_OK) st = ops(*ctx, o);
    return st;
}

static int usable(clxent_context *ctx) {
    clxent_device_info info;
    return ctx && clxent_context_info(ctx, &info) == CLXENT_STATUS_OK;
}

static void test_every_call_fails_once(void **state) {
    (void)state;
    if (!(SPEC = fx_device_spec())) return;
    fx_rng rng = fx_rng_seed(77);
    fx_fill_uniform(&rng, X, R * C, -4.0f, 4.0f);

    /* The clean run: reference results and the number of calls. */
    outputs ref, o;
    clxent_context *ctx = NULL;
    clx_fault_arm(0);
    clxent_status st = sequence(&ctx, &ref);
    fx_assert_status(ctx, st, CLXENT_STATUS_OK);
    long before_destroy = clx_fault_calls();
    clxent_context_destroy(ctx);
    long total = clx_fault_calls();
    assert_true(isfinite(ref.loss_fused) && ref.loss_fused > 0.0f);
    print_message("%ld OpenCL calls (%ld in destroy)\n", total,
                  total - before_destroy);
    assert_true(before_destroy > 10);

    long reported = 0, tolerated = 0, in_destroy = 0;
    for (long k = 1; k <= total; ++k) {
        clx_fault_arm(k);
        st = sequence(&ctx, &o);
        long seen = clx_fault_calls();
        clx_fault_arm(0);
        int fired = k <= seen;
        if (st != CLXENT_STATUS_OK) {
            if (!fired)
                fail_msg("k=%ld: %s without a fault: %s", k,
                         clxent_status_name(st), clxent_context_message(ctx));
            assert_non_null(ctx); /* only out of host memory gives NULL */
            const char *msg = clxent_context_message(ctx);
            if (!strstr(msg, "CL_OUT_OF_RESOURCES"))
                fail_msg("k=%ld: %s, but the message does not name the "
                         "OpenCL error: %s",
                         k, clxent_status_name(st), msg);
            ++reported;
            if (usable(ctx)) {
                /* The fault is gone: the same context must work again. */
                clxent_status again = ops(ctx, &o);
                if (again != CLXENT_STATUS_OK)
                    fail_msg("k=%ld: after a reported %s the context no "
                             "longer works: %s: %s",
                             k, clxent_status_name(st),
                             clxent_status_name(again),
                             clxent_context_message(ctx));
                if (memcmp(&o, &ref, sizeof o) != 0)
                    fail_msg("k=%ld: after a reported fault the context "
                             "computes different results",
                             k);
            }
            clxent_context_destroy(ctx);
            continue;
        }
        /* Success: the failing call was either tolerated or not reached
         * yet. Either way the results are the clean ones. */
        if (memcmp(&o, &ref, sizeof o) != 0)
            fail_msg("k=%ld: the failure of OpenCL call %ld was swallowed "
                     "and the results are wrong",
                     k, k);
        if (fired) {
            ++tolerated;
            clxent_context_destroy(ctx);
        } else {
            /* The k-th call lies in destroy: it must not crash. */
            clx_fault_arm(k - seen);
            clxent_context_destroy(ctx);
            long destroy_calls = clx_fault_calls();
            clx_fault_arm(0);
            if (destroy_calls >= k - seen) ++in_destroy;
        }
    }
    print_message("%ld faults reported, %ld tolerated with clean results, "
                  "%ld inside destroy\n",
                  reported, tolerated, in_destroy);
    assert_int_equal(reported + tolerated + in_destroy, total);
    assert_true(reported > 0);
}

/* Allocation beyond the device's limits: OUT_OF_MEMORY, no crash, and
 * the context keeps working. */
static void test_allocation_limits(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    assert_true(info.max_alloc_bytes > 0 && info.global_mem_bytes > 0);
    size_t sizes[] = {
        (size_t)info.max_alloc_bytes + 1,
        (size_t)info.global_mem_bytes + 1,
        (size_t)info.global_mem_bytes * 2,
        SIZE_MAX / 2,
        SIZE_MAX,
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        clxent_buffer *buf = (clxent_buffer *)&sizes; /* must be reset */
        clxent_status st = clxent_buffer_create(ctx, sizes[i], &buf);
        if (st != CLXENT_STATUS_OUT_OF_MEMORY)
            fail_msg("buffer_create(%zu): %s, expected OUT_OF_MEMORY: %s",
                     sizes[i], clxent_status_name(st),
                     clxent_context_message(ctx));
        assert_null(buf);
        assert_non_null(strstr(clxent_context_message(ctx), "bytes"));
    }
    /* The largest allowed allocation is at least accepted or refused
     * cleanly (drivers may allocate lazily). */
    clxent_buffer *big = NULL;
    clxent_status st =
        clxent_buffer_create(ctx, (size_t)info.max_alloc_bytes, &big);
    assert_true(st == CLXENT_STATUS_OK || st == CLXENT_STATUS_OUT_OF_MEMORY);
    clxent_buffer_release(big);
    /* The context still works. */
    float v[4] = {1, 2, 3, 4}, back[4] = {0};
    clxent_buffer *small = fx_upload(ctx, v, sizeof v);
    fx_assert_status(ctx, clxent_buffer_read(ctx, small, 0, sizeof back, back),
                     CLXENT_STATUS_OK);
    assert_memory_equal(v, back, sizeof v);
    clxent_buffer_release(small);
    clxent_context_destroy(ctx);
}

/* The seam itself, so a broken seam cannot make the test above vacuous. */
static void test_seam(void **state) {
    (void)state;
    clx_fault_arm(2);
    assert_int_equal(clx_fault_next(), 0);
    assert_int_equal(clx_fault_next(), 1);
    assert_int_equal(clx_fault_next(), 0);
    assert_int_equal(clx_fault_calls(), 3);
    clx_fault_arm(0);
    assert_int_equal(clx_fault_calls(), 0);
    assert_int_equal(clx_fault_next(), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seam),
        cmocka_unit_test(test_allocation_limits),
        cmocka_unit_test(test_every_call_fails_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
