/* Lifetimes and ordering as a garbage-collected caller (a Python client
 * through pyopencl and ctypes) meets them: queues clxent cannot run on,
 * buffers that outlive their context, and wait lists whose events
 * complete late or fail. A test that could hang is guarded by a fuse
 * thread, so CTest never waits on it. */
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

/* ---- helpers ---- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* After `delay` seconds, unless stopped first, sets a user event to
 * `status`. With `hard`, it is a watchdog: 10 s later still not stopped,
 * the process exits with a message (cmocka cannot fail a test from
 * another thread, and a hung call would hang CTest). */
typedef struct fuse {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stopped, fired, hard;
    double delay;
    cl_event event;
    cl_int status;
    const char *what;
} fuse;

static int wait_stopped(fuse *f, double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double ns = (double)until.tv_nsec + seconds * 1e9;
    until.tv_sec += (time_t)(ns / 1e9);
    until.tv_nsec = (long)(ns - 1e9 * (double)(time_t)(ns / 1e9));
    pthread_mutex_lock(&f->lock);
    int rc = 0;
    while (!f->stopped && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &until);
    int stopped = f->stopped;
    pthread_mutex_unlock(&f->lock);
    return stopped;
}

static void *fuse_main(void *arg) {
    fuse *f = arg;
    if (wait_stopped(f, f->delay)) return NULL;
    pthread_mutex_lock(&f->lock);
    f->fired = 1;
    pthread_mutex_unlock(&f->lock);
    if (f->event) (void)clSetUserEventStatus(f->event, f->status);
    /* a hang, not a slow return: a loaded 2-core machine under ASan once
     * took past delay + 10 s (CI's asan stage with a build beside it) */
    if (f->hard && !wait_stopped(f, 60.0)) {
        fprintf(stderr, "test_lifetime: %s did not return within %.0f s\n",
                f->what, f->delay + 60.0);
        _exit(1);
    }
    return NULL;
}

static void fuse_start(fuse *f, double delay, cl_event event, cl_int status,
                       int hard, const char *what) {
    memset(f, 0, sizeof *f);
    f->delay = delay;
    f->event = event;
    f->status = status;
    f->hard = hard;
    f->what = what;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    assert_int_equal(pthread_create(&f->thread, NULL, fuse_main, f), 0);
}

/* Stops the fuse; returns whether it had fired. */
static int fuse_stop(fuse *f) {
    pthread_mutex_lock(&f->lock);
    f->stopped = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    return f->fired;
}

static char *device_spec(clxent_context *ctx, char *spec, size_t size) {
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    snprintf(spec, size, "%s", info.spec);
    return spec;
}

/* ---- 1. queues clxent cannot run on ---- */

/* clxent's steps inside one call (check, row kernels, reduction, verdict
 * read) depend on in-order execution: an out-of-order queue gave false
 * TARGET_OUT_OF_RANGE verdicts and garbage losses, so it is refused. */
static void test_out_of_order_queue_refused(void **state) {
    (void)state;
    clxent_context *probe = fx_device_context();
    if (!probe) return;
    cl_device_id device = fx_cl_device(probe);
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
    assert_int_equal(fx_queue_refs(q), 1);
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
    assert_int_equal(fx_queue_refs(q), 1);
    assert_null(clxent_context_queue(ctx));
    clxent_device_info info;
    assert_int_equal(clxent_context_info(ctx, &info),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    clxent_context_destroy(ctx);
    assert_int_equal(fx_queue_refs(q), 1);

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

/* ---- 2. buffers that outlive their context ---- */

/* Both orders on one context's buffers: `early` are released before the
 * context is destroyed, the others after (a garbage collector chooses). */
static void release_both_orders(clxent_context *ctx, clxent_buffer **early,
                                size_t n_early, clxent_buffer **late,
                                size_t n_late) {
    for (size_t i = 0; i < n_early; ++i) clxent_buffer_release(early[i]);
    clxent_context_destroy(ctx);
    for (size_t i = 0; i < n_late; ++i) clxent_buffer_release(late[i]);
}

static void test_host_buffers_outlive_context(void **state) {
    (void)state;
    clxent_context *ctx = fx_host_context();
    float v[4] = {1, 2, 3, 4}, back[4] = {0};
    clxent_buffer *a = fx_upload(ctx, v, sizeof v);
    clxent_buffer *b = fx_upload(ctx, v, sizeof v);
    fx_assert_status(ctx, clxent_buffer_read(ctx, b, 0, sizeof back, back),
                     CLXENT_STATUS_OK);
    assert_memory_equal(v, back, sizeof v);
    assert_int_equal(clxent_buffer_size(b), sizeof v);
    release_both_orders(ctx, &a, 1, &b, 1);
}

static void test_device_buffers_outlive_context(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    cl_int err;
    cl_context clctx = fx_cl_context(ctx);
    float v[4] = {1, 2, 3, 4};
    /* created and wrapped, each released before and after the destroy */
    clxent_buffer *created[2], *wrapped[2];
    cl_mem mems[2];
    for (int i = 0; i < 2; ++i) {
        created[i] = fx_upload(ctx, v, sizeof v);
        mems[i] = clCreateBuffer(clctx, CL_MEM_READ_WRITE, sizeof v, NULL,
                                 &err);
        assert_int_equal(err, CL_SUCCESS);
        fx_assert_status(ctx, clxent_buffer_wrap(ctx, mems[i], &wrapped[i]),
                         CLXENT_STATUS_OK);
        assert_int_equal(fx_mem_refs(mems[i]), 2);
    }
    clxent_buffer *early[] = {created[0], wrapped[0]};
    clxent_buffer *late[] = {created[1], wrapped[1]};
    release_both_orders(ctx, early, 2, late, 2);
    /* the wraps let go of their references, whichever came first */
    for (int i = 0; i < 2; ++i) {
        assert_int_equal(fx_mem_refs(mems[i]), 1);
        assert_int_equal(clReleaseMemObject(mems[i]), CL_SUCCESS);
    }
}

/* A context at the address of a destroyed one, when the allocator hands
 * that address out again within a few tries (else the last one made):
 * the case a pointer comparison cannot tell apart. */
static clxent_context *successor(const char *spec, uintptr_t old) {
    clxent_context *made[4] = {0};
    size_t n = 0, pick = 0;
    for (; n < 4; ++n) {
        fx_assert_status(made[n], clxent_context_create(spec, &made[n]),
                         CLXENT_STATUS_OK);
        pick = n;
        if ((uintptr_t)made[n] == old) break;
    }
    print_message("%s: %s the destroyed context's address\n", spec,
                  n < 4 ? "a new context took" : "no new context took");
    if (n == 4) pick = 3;
    for (size_t i = 0; i < 4 && made[i]; ++i)
        if (i != pick) clxent_context_destroy(made[i]);
    return made[pick];
}

/* A buffer of a destroyed context is another context's on every new
 * one: buffer calls and operations say WRONG_CONTEXT. */
static void stale_buffer_refused(const char *spec) {
    clxent_context *old = NULL;
    fx_assert_status(old, clxent_context_create(spec, &old),
                     CLXENT_STATUS_OK);
    float v[6] = {1, 2, 3, 4, 5, 6}, back[6] = {0};
    clxent_buffer *stale = fx_upload(old, v, sizeof v);
    uintptr_t old_address = (uintptr_t)old;
    clxent_context_destroy(old);

    clxent_context *ctx = successor(spec, old_address);
    fx_assert_status(ctx, clxent_buffer_read(ctx, stale, 0, sizeof back, back),
                     CLXENT_STATUS_WRONG_CONTEXT);
    assert_contains(clxent_context_message(ctx), "another context");
    fx_assert_status(ctx, clxent_buffer_write(ctx, stale, 0, sizeof v, v),
                     CLXENT_STATUS_WRONG_CONTEXT);
    clxent_buffer *max = fx_upload(ctx, NULL, 2 * sizeof(float));
    clxent_matrix x = clxent_matrix_of(stale, 2, 3, CLXENT_F32);
    clxent_vector out = clxent_vector_of(max, 2, CLXENT_F32);
    fx_assert_status(ctx, clxent_row_max(ctx, &x, &out, NULL),
                     CLXENT_STATUS_WRONG_CONTEXT);
    assert_contains(clxent_context_message(ctx), "another context");
    /* and the new context's own buffers still work */
    clxent_buffer *own = fx_upload(ctx, v, sizeof v);
    x.buffer = own;
    fx_assert_status(ctx, clxent_row_max(ctx, &x, &out, NULL),
                     CLXENT_STATUS_OK);
    float m[2] = {0};
    fx_assert_status(ctx, clxent_buffer_read(ctx, max, 0, sizeof m, m),
                     CLXENT_STATUS_OK);
    assert_true(m[0] == 3.0f && m[1] == 6.0f);
    clxent_buffer_release(stale);
    clxent_buffer_release(own);
    clxent_buffer_release(max);
    clxent_context_destroy(ctx);
}

static void test_stale_buffer_host(void **state) {
    (void)state;
    stale_buffer_refused("host");
}

static void test_stale_buffer_device(void **state) {
    (void)state;
    clxent_context *probe = fx_device_context();
    if (!probe) return;
    char spec[32];
    device_spec(probe, spec, sizeof spec);
    clxent_context_destroy(probe);
    stale_buffer_refused(spec);
}

/* ---- 3. wait lists and the target check ---- */

enum { WR = 16, WC = 50 };

/* A fused call with class indices on device buffers, and its reference
 * loss from the host backend. */
typedef struct fused_case {
    clxent_context *ctx;
    clxent_buffer *x, *y, *loss, *grad;
    float ref_loss;
} fused_case;

static void fused_open(fused_case *fc, clxent_context *ctx) {
    static float X[WR * WC];
    static int32_t Y[WR];
    fx_rng rng = fx_rng_seed(31);
    fx_fill_uniform(&rng, X, WR * WC, -3.0f, 3.0f);
    for (int r = 0; r < WR; ++r) Y[r] = (int32_t)(fx_next(&rng) % WC);
    fc->ctx = ctx;
    fc->x = fx_upload(ctx, X, sizeof X);
    fc->y = fx_upload(ctx, Y, sizeof Y);
    fc->loss = fx_upload(ctx, NULL, sizeof(float));
    fc->grad = fx_upload(ctx, NULL, sizeof X);
    clxent_context *host = fx_host_context();
    clxent_loss_options opt;
    clxent_loss_options_init(&opt);
    fx_assert_status(host,
                     clxent_cross_entropy_host(host, WR, WC, CLXENT_F32, X,
                                               CLXENT_I32, Y, NULL, &opt,
                                               &fc->ref_loss, NULL, NULL),
                     CLXENT_STATUS_OK);
    clxent_context_destroy(host);
}

static clxent_status fused_run(fused_case *fc, clxent_target_check check,
                               cl_event wait, cl_event *out) {
    clxent_matrix x = clxent_matrix_of(fc->x, WR, WC, CLXENT_F32);
    clxent_matrix g = clxent_matrix_of(fc->grad, WR, WC, CLXENT_F32);
    clxent_targets t;
    memset(&t, 0, sizeof t);
    t.indices = clxent_vector_of(fc->y, WR, CLXENT_I32);
    clxent_vector loss = clxent_vector_of(fc->loss, 1, CLXENT_F32);
    clxent_loss_options opt;
    clxent_loss_options_init(&opt);
    opt.target_check = check;
    clxent_events ev = {1, &wait, out};
    return clxent_cross_entropy(fc->ctx, &x, &t, NULL, &opt, NULL, &loss,
                                NULL, &g, &ev);
}

static void fused_expect_loss(fused_case *fc) {
    float got = 0.0f;
    fx_assert_status(fc->ctx,
                     clxent_buffer_read(fc->ctx, fc->loss, 0, sizeof got,
                                        &got),
                     CLXENT_STATUS_OK);
    if (!fx_close(got, fc->ref_loss, 1e-5, 1e-5))
        fail_msg("loss %.9g, host reference %.9g", got, fc->ref_loss);
}

static void fused_close(fused_case *fc) {
    clxent_buffer_release(fc->x);
    clxent_buffer_release(fc->y);
    clxent_buffer_release(fc->loss);
    clxent_buffer_release(fc->grad);
}

/* SYNC (the default) waits for the call's wait list: a user event in it
 * that fails fails the call, and the message names the mode that does
 * not wait. */
static void test_sync_check_failed_wait_event(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    fused_case fc;
    fused_open(&fc, ctx);
    cl_int err;
    cl_event user = clCreateUserEvent(fx_cl_context(ctx), &err);
    assert_int_equal(err, CL_SUCCESS);
    fuse fail_later, watchdog;
    fuse_start(&fail_later, 0.2, user, -1, 0, "");
    fuse_start(&watchdog, 30.0, user, -1, 1,
               "a SYNC call whose wait-list event fails");
    cl_event out = NULL;
    clxent_status st = fused_run(&fc, CLXENT_CHECK_SYNC, user, &out);
    int hung = fuse_stop(&watchdog);
    fuse_stop(&fail_later);
    assert_false(hung);
    if (st == CLXENT_STATUS_OK)
        fail_msg("a failed event in the wait list: the call returned OK");
    const char *msg = clxent_context_message(ctx);
    print_message("%s: %s\n", clxent_status_name(st), msg);
    assert_contains(msg, "clxent_cross_entropy");
    assert_contains(msg, "CLXENT_CHECK_DEFERRED");
    assert_contains(msg, "wait list");
    assert_null(out); /* written only when the call succeeds */
    /* the queue recovers: a call without that event computes the loss */
    assert_int_equal(clReleaseEvent(user), CL_SUCCESS);
    (void)clxent_finish(ctx); /* may still report the failed commands */
    user = clCreateUserEvent(fx_cl_context(ctx), &err);
    assert_int_equal(err, CL_SUCCESS);
    assert_int_equal(clSetUserEventStatus(user, CL_COMPLETE), CL_SUCCESS);
    fx_assert_status(ctx, fused_run(&fc, CLXENT_CHECK_SYNC, user, NULL),
                     CLXENT_STATUS_OK);
    fused_expect_loss(&fc);
    assert_int_equal(clReleaseEvent(user), CL_SUCCESS);
    fused_close(&fc);
    clxent_context_destroy(ctx);
}

/* SYNC returns only once the wait list has completed (here from another
 * thread; from the calling thread after the call it would never return). */
static void test_sync_check_waits_for_wait_list(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    fused_case fc;
    fused_open(&fc, ctx);
    cl_int err;
    cl_event user = clCreateUserEvent(fx_cl_context(ctx), &err);
    assert_int_equal(err, CL_SUCCESS);
    fuse complete_later, watchdog;
    fuse_start(&complete_later, 0.3, user, CL_COMPLETE, 0, "");
    fuse_start(&watchdog, 30.0, NULL, 0, 1,
               "a SYNC call whose wait-list event completes later");
    double t0 = now_s();
    clxent_status st = fused_run(&fc, CLXENT_CHECK_SYNC, user, NULL);
    double waited = now_s() - t0;
    assert_false(fuse_stop(&watchdog));
    int completed = fuse_stop(&complete_later);
    fx_assert_status(ctx, st, CLXENT_STATUS_OK);
    assert_true(completed);
    if (waited < 0.25)
        fail_msg("returned after %.3f s, before its wait list completed",
                 waited);
    fused_expect_loss(&fc);
    assert_int_equal(clReleaseEvent(user), CL_SUCCESS);
    fused_close(&fc);
    clxent_context_destroy(ctx);
}

/* DEFERRED does not wait: the call returns with the event incomplete, and
 * the same thread completes it afterwards. */
static void test_deferred_check_does_not_wait(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    fused_case fc;
    fused_open(&fc, ctx);
    cl_int err;
    cl_event user = clCreateUserEvent(fx_cl_context(ctx), &err);
    assert_int_equal(err, CL_SUCCESS);
    fuse watchdog;
    fuse_start(&watchdog, 30.0, user, CL_COMPLETE, 1,
               "a DEFERRED call whose wait-list event is incomplete");
    cl_event out = NULL;
    clxent_status st = fused_run(&fc, CLXENT_CHECK_DEFERRED, user, &out);
    int hung = fuse_stop(&watchdog);
    if (hung) fail_msg("the DEFERRED call waited for its wait list (30 s)");
    fx_assert_status(ctx, st, CLXENT_STATUS_OK);
    assert_non_null(out);
    cl_int exec = CL_COMPLETE;
    assert_int_equal(clGetEventInfo(out, CL_EVENT_COMMAND_EXECUTION_STATUS,
                                    sizeof exec, &exec, NULL),
                     CL_SUCCESS);
    assert_true(exec > CL_COMPLETE); /* still waiting for the user event */
    assert_int_equal(clSetUserEventStatus(user, CL_COMPLETE), CL_SUCCESS);
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    fused_expect_loss(&fc);
    assert_int_equal(clReleaseEvent(out), CL_SUCCESS);
    assert_int_equal(clReleaseEvent(user), CL_SUCCESS);
    fused_close(&fc);
    clxent_context_destroy(ctx);
}

/* An optional argument selects tests by name ("*stale*"). */
int main(int argc, char **argv) {
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order_queue_refused),
        cmocka_unit_test(test_host_buffers_outlive_context),
        cmocka_unit_test(test_device_buffers_outlive_context),
        cmocka_unit_test(test_stale_buffer_host),
        cmocka_unit_test(test_stale_buffer_device),
        cmocka_unit_test(test_sync_check_failed_wait_event),
        cmocka_unit_test(test_sync_check_waits_for_wait_list),
        cmocka_unit_test(test_deferred_check_does_not_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
