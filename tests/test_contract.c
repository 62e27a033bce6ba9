/* The host/kernel contract (kernels/contract.h): every kernel the list
 * names exists in its file and takes exactly the arguments of its shape,
 * by count and by name, as the device's compiler sees them; and the
 * sizes both sides assume (st_t, chk_t) hold. */
#include "fixtures.h"

#include "opencl/runtime/kernel_args.h"

#include <stdio.h>
#include <string.h>

#define NAME_OF(type, name) #name,
#define NAMES_OF_GROUP(group) CLX_G_##group(NAME_OF, CLX_HNOSEP)
#define SHAPE_NAMES(shape)                                                     \
    static const char *const names_##shape[] = {                              \
        CLX_A_##shape(NAMES_OF_GROUP, NAME_OF, CLX_HNOSEP)};
CLX_SHAPE_LIST(SHAPE_NAMES)

typedef struct kernel_entry {
    const char *name, *file;
    const char *const *args;
    size_t count;
} kernel_entry;

static const kernel_entry kernels[] = {
#define ENTRY(name, file, shape)                                               \
    {#name, file, names_##shape,                                               \
     sizeof names_##shape / sizeof names_##shape[0]},
    CLX_KERNEL_LIST(ENTRY)
#undef ENTRY
};

/* The build options under which kernel k exists (the CPU kernels need
 * VEC > 1, the batch kernels VEC 16 and class indices). */
static const char *options_for(const kernel_entry *k) {
    if (strstr(k->file, "xent_batch") || strstr(k->name, "_batch") ||
        strstr(k->name, "lanes") || strstr(k->name, "_rowsg") ||
        strstr(k->name, "_rowsl") || strstr(k->name, "sm_cached"))
        return "-DX_T=0 -DY_T=0 -DTGT=0 -DVEC=16 -DKT=2 -DSMOOTH=1 "
               "-cl-kernel-arg-info";
    return "-DX_T=0 -DY_T=0 -DTGT=0 -DVEC=1 -DKT=8 -DCK=16 "
           "-cl-kernel-arg-info";
}

static void test_argument_lists(void **state) {
    (void)state;
    clxent_context *ctx = fx_device();
    if (!ctx) return;
    assert_true(sizeof kernels / sizeof *kernels >= 30);
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; ++i) {
        const kernel_entry *e = &kernels[i];
        cl_kernel k = NULL;
        fx_assert_status(ctx,
                         clx_cl_kernel(ctx, e->file, options_for(e), e->name,
                                       &k, NULL),
                         CLXENT_STATUS_OK);
        cl_uint n = 0;
        assert_int_equal(clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof n, &n,
                                         NULL),
                         CL_SUCCESS);
        if (n != e->count)
            fail_msg("%s (%s): %u arguments, contract.h lists %zu", e->name,
                     e->file, (unsigned)n, e->count);
        for (cl_uint a = 0; a < n; ++a) {
            char name[64] = "";
            cl_int err = clGetKernelArgInfo(k, a, CL_KERNEL_ARG_NAME,
                                            sizeof name, name, NULL);
            if (err == CL_KERNEL_ARG_INFO_NOT_AVAILABLE) break;
            assert_int_equal(err, CL_SUCCESS);
            if (strcmp(name, e->args[a]) != 0)
                fail_msg("%s: argument %u is \"%s\", contract.h says \"%s\"",
                         e->name, (unsigned)a, name, e->args[a]);
        }
    }
}

/* The generated setters set as many arguments as the lists name. */
static void test_setter_counts(void **state) {
    (void)state;
    assert_int_equal(CLX_SHAPE_ARG_COUNT(rows_fused),
                     sizeof names_rows_fused / sizeof *names_rows_fused);
    assert_int_equal(CLX_SHAPE_ARG_COUNT(xent_check), 21);
    assert_int_equal(CLX_SHAPE_ARG_COUNT(copy_rows), 11);
    /* a group is its parameters in order inside any shape */
    assert_string_equal(names_vec_fused[0], "x");
    assert_string_equal(names_vec_fused[26], "loss");
    assert_string_equal(names_vec_fused[31], "gm");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setter_counts),
        cmocka_unit_test(test_argument_lists),
    };
    return cmocka_run_group_tests(tests, NULL, fx_group_teardown);
}
