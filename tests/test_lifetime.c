/* Lifetimes and ordering as a garbage-collected caller (a Python client
 * through pyopencl and ctypes) meets them: queues clxent cannot run on. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_cond_timedwait */
#include "fixtures.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define assert_contains(haystack, needle)                                      \
    do {                                                                       \
        const char *h_ = (haystack), *n_ = (needle);                           \
        if (!strstr(h_, n_))                                                   \
            fail_msg("\"%s\" does not contain \"%s\"", h_, n_);                \
    } while (0)

/* ---- helpers ---- */

static cl_device_id cl_device_of(clxent_context *ctx) {
    cl_device_id device = NULL;
    assert_int_equal(clGetCommandQueueInfo(clxent_context_queue(ctx),
                                           CL_QUEUE_DEVICE, sizeof device,
                                           &device, NULL),
                     CL_SUCCESS);
    return device;
}

static cl_uint queue_refs(cl_command_queue q) {
    cl_uint refs = 0;
    assert_int_equal(clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT,
                                           sizeof refs, &refs, NULL),
                     CL_SUCCESS);
    return refs;
}

/* ---- 1. queues clxent cannot run on ---- */

/* clxent's steps inside one call (check, row kernels, reduction, verdict
 * read) depend on in-order execution: an out-of-order queue gave false
 * TARGET_OUT_OF_RANGE verdicts and garbage losses, so it is refused. */
static void test_out_of_order_queue_refused(void **state) {
    (void)state;
    clxent_context *probe = fx_device_context();
    if (!probe) return;
    cl_device_id device = cl_device_of(probe);
    clxent_context_destroy(probe);
    cl_int err;
    cl_context clctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_command_queue q = clCreateCommandQueue(
        clctx, device, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (err != CL_SUCCESS) {
        print_message("the device refuses "
                      "CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE (%d): nothing "
                      "to refuse\n",
                      (int)err);
        assert_int_equal(clReleaseContext(clctx), CL_SUCCESS);
        skip();
        return;
    }
    assert_int_equal(queue_refs(q), 1);
    clxent_context *ctx = NULL;
    clxent_status st = clxent_context_create_from_queue(q, &ctx);
    assert_non_null(ctx);
    if (st != CLXENT_STATUS_UNSUPPORTED)
        fail_msg("an out-of-order queue: %s, expected "
                 "CLXENT_STATUS_UNSUPPORTED (%s)",
                 clxent_status_name(st), clxent_context_message(ctx));
    const char *msg = clxent_context_message(ctx);
    assert_contains(msg, "clxent_context_create_from_queue");
    assert_contains(msg, "CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE");
    assert_contains(msg, "in-order");
    assert_contains(msg, "same cl_context");
    /* A failed context like any other: not retained, only destroys. */
    assert_int_equal(queue_refs(q), 1);
    assert_null(clxent_context_queue(ctx));
    clxent_device_info info;
    assert_int_equal(clxent_context_info(ctx, &info),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    clxent_context_destroy(ctx);
    assert_int_equal(queue_refs(q), 1);

    /* The advice works: an in-order queue on the same cl_context. */
    cl_command_queue in_order = clCreateCommandQueue(clctx, device, 0, &err);
    assert_int_equal(err, CL_SUCCESS);
    ctx = NULL;
    fx_assert_status(ctx, clxent_context_create_from_queue(in_order, &ctx),
                     CLXENT_STATUS_OK);
    clxent_context_destroy(ctx);
    assert_int_equal(clReleaseCommandQueue(in_order), CL_SUCCESS);
    assert_int_equal(clReleaseCommandQueue(q), CL_SUCCESS);
    assert_int_equal(clReleaseContext(clctx), CL_SUCCESS);
}

/* An optional argument selects tests by name ("*stale*"). */
int main(int argc, char **argv) {
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order_queue_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
