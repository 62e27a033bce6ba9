/* Threads. The supported model: one context per thread. A context holds
 * one in-order queue, cached kernels whose arguments are set per launch,
 * scratch buffers and the last-error message, none of it locked, so a
 * context (and its buffers) must not be used by two threads at once.
 * Separate contexts are independent: here 4 threads, each with its own
 * device context and its own host context, run the full operation mix
 * (hard_ops.h) on varying shapes and dtypes many times, and every result
 * must be bitwise equal to the one computed single-threaded first. */
#include "fixtures.h"
#include "hard_ops.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define ITERATIONS 6

static const hard_case JOBS[] = {
    {16, 5, CLXENT_F32, 11},   {9, 300, CLXENT_F16, 12},
    {40, 33, CLXENT_BF16, 13}, {3, 4097, CLXENT_F32, 14},
    {1, 1, CLXENT_F32, 15},    {64, 128, CLXENT_F32, 16},
};
#define NJOBS (sizeof JOBS / sizeof JOBS[0])

typedef struct worker {
    int id;
    const char *spec[2];    /* "host" and the device spec (or NULL) */
    hard_blob *expect[2];   /* NJOBS reference results for each */
    pthread_t thread;
    int runs, mismatches, errors;
    char first_problem[2048];
} worker;

static void problem(worker *w, const char *format, const char *a, long b,
                    int it) {
    if (w->errors + w->mismatches == 1)
        snprintf(w->first_problem, sizeof w->first_problem, format, w->id, a,
                 b, it);
}

static void *work(void *arg) {
    worker *w = arg;
    clxent_context *ctx[2] = {NULL, NULL};
    for (int c = 0; c < 2; ++c) {
        if (!w->spec[c]) continue;
        if (clxent_context_create(w->spec[c], &ctx[c]) != CLXENT_STATUS_OK) {
            w->errors++;
            problem(w, "thread %d: context: %s (%ld, %d)",
                    clxent_context_message(ctx[c]), 0, 0);
            goto out;
        }
    }
    for (int it = 0; it < ITERATIONS; ++it) {
        for (size_t j = 0; j < NJOBS; ++j) {
            /* Each thread walks the jobs in its own order, alternating
             * its two contexts. */
            size_t job = (j * (size_t)(w->id + 1) + (size_t)it) % NJOBS;
            for (int c = 0; c < 2; ++c) {
                if (!ctx[c]) continue;
                hard_blob got;
                char error[1024];
                clxent_status st =
                    hard_run(ctx[c], &JOBS[job], &got, error, sizeof error);
                w->runs++;
                if (st) {
                    w->errors++;
                    problem(w, "thread %d: %s (job %ld, iteration %d)",
                            error, (long)job, it);
                    continue;
                }
                long at = hard_diff(&w->expect[c][job], &got);
                if (at >= 0) {
                    w->mismatches++;
                    char what[128];
                    snprintf(what, sizeof what, "%s: %zu x %zu %s",
                             w->spec[c], JOBS[job].rows, JOBS[job].cols,
                             clxent_dtype_name(JOBS[job].dtype));
                    problem(w,
                            "thread %d: %s differs from the single-threaded "
                            "result at byte %ld (iteration %d)",
                            what, at, it);
                }
                free(got.data);
            }
        }
    }
out:
    for (int c = 0; c < 2; ++c) clxent_context_destroy(ctx[c]);
    return NULL;
}

/* Single-threaded references on a fresh context of `spec`. */
static void references(const char *spec, hard_blob *expect) {
    clxent_context *ctx = NULL;
    clxent_status st = clxent_context_create(spec, &ctx);
    if (st) fail_msg("context on %s: %s", spec, clxent_context_message(ctx));
    char error[1024];
    for (size_t j = 0; j < NJOBS; ++j)
        if (hard_run(ctx, &JOBS[j], &expect[j], error, sizeof error))
            fail_msg("reference: %s", error);
    clxent_context_destroy(ctx);
}

static void run_threads(const char *device_spec) {
    static hard_blob expect[2][NJOBS];
    references("host", expect[0]);
    if (device_spec) references(device_spec, expect[1]);
    worker w[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; ++i) {
        w[i].id = i;
        w[i].spec[0] = "host";
        w[i].spec[1] = device_spec;
        w[i].expect[0] = expect[0];
        w[i].expect[1] = expect[1];
    }
    for (int i = 0; i < THREADS; ++i)
        assert_int_equal(pthread_create(&w[i].thread, NULL, work, &w[i]), 0);
    int problems = 0, runs = 0;
    for (int i = 0; i < THREADS; ++i) {
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
        runs += w[i].runs;
        if (w[i].errors || w[i].mismatches) {
            print_error("%s (%d errors, %d mismatches)\n", w[i].first_problem,
                        w[i].errors, w[i].mismatches);
            ++problems;
        }
    }
    for (size_t j = 0; j < NJOBS; ++j) {
        free(expect[0][j].data);
        if (device_spec) free(expect[1][j].data);
    }
    int per_thread = (device_spec ? 2 : 1) * ITERATIONS * (int)NJOBS;
    print_message("%d threads, %d runs of the operation mix\n", THREADS,
                  runs);
    assert_int_equal(problems, 0);
    assert_int_equal(runs, THREADS * per_thread);
}

static void test_contexts_per_thread(void **state) {
    (void)state;
    const char *spec = fx_device_spec();
    if (!spec) return;
    run_threads(spec);
}

static void test_host_contexts_per_thread(void **state) {
    (void)state;
    run_threads(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_contexts_per_thread),
        cmocka_unit_test(test_contexts_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
