/* Determinism (docs/semantics.md: fixed-order reductions, no floating-point
 * atomics): the same inputs on the same device give bitwise the same
 * loss, lse and gradient, run after run and in a second context. Every
 * operation (hard_ops.h), every storage type, small, medium and huge C. */
#include "fixtures.h"
#include "hard_ops.h"

#include <stdlib.h>

static const hard_case CASES[] = {
    {64, 7, CLXENT_F32, 1},      {64, 7, CLXENT_F16, 2},
    {64, 7, CLXENT_BF16, 3},     {33, 1000, CLXENT_F32, 4},
    {33, 1000, CLXENT_F16, 5},   {33, 1000, CLXENT_BF16, 6},
    {3, 32769, CLXENT_F32, 7},   {2, 300000, CLXENT_F32, 8},
    {2, 300000, CLXENT_F16, 9},  {2, 300000, CLXENT_BF16, 10},
};
#define REPEATS 3

static void check_context_pair(clxent_context *a, clxent_context *b) {
    char error[2048];
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; ++i) {
        const hard_case *k = &CASES[i];
        hard_blob first, again;
        clxent_status st = hard_run(a, k, &first, error, sizeof error);
        if (st) fail_msg("%s", error);
        for (int rep = 0; rep <= REPEATS; ++rep) {
            /* The last repeat runs on the second context. */
            clxent_context *ctx = rep == REPEATS ? b : a;
            st = hard_run(ctx, k, &again, error, sizeof error);
            if (st) fail_msg("%s", error);
            long at = hard_diff(&first, &again);
            if (at >= 0)
                fail_msg("%zu x %zu %s: run %d (%s context) differs from "
                         "the first at byte %ld of %zu",
                         k->rows, k->cols, clxent_dtype_name(k->dtype),
                         rep + 2, rep == REPEATS ? "second" : "same", at,
                         first.size);
            free(again.data);
        }
        free(first.data);
    }
}

static void test_device(void **state) {
    (void)state;
    fx_on_pair(1, check_context_pair);
}

static void test_host(void **state) {
    (void)state;
    fx_on_pair(0, check_context_pair);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
