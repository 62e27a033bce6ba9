/* Device selection, status texts, and contexts on both backends: their
 * info, queue and timing, the environment's device, failed creation, and
 * NULL or zero-size arguments to every context and buffer function.
 * Buffers and kernel programs: test_buffers_kernels.c. */
#define _POSIX_C_SOURCE 200809L /* setenv, strdup */

#include "fixtures.h"
#include "api/device_select.h"
#include "opencl/runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The listing, malloc'd; *n includes host. */
static clxent_device_info *list_devices(size_t *n) {
    assert_int_equal(clxent_devices_list(NULL, 0, n), CLXENT_STATUS_OK);
    clxent_device_info *infos = calloc(*n, sizeof *infos);
    assert_non_null(infos);
    size_t again = 0;
    assert_int_equal(clxent_devices_list(infos, *n, &again), CLXENT_STATUS_OK);
    assert_int_equal(again, *n);
    return infos;
}

/* ---- selector grammar ---- */

static void test_spec_parse(void **state) {
    (void)state;
    int p = -1, d = -1;
    cl_device_type t = 0;
    char err[256];
    assert_string_equal(clx_spec_parse(NULL, &p, &d, &t, err, sizeof err),
                        "default");
    assert_string_equal(clx_spec_parse("", &p, &d, &t, err, sizeof err),
                        "default");
    assert_string_equal(clx_spec_parse("  ", &p, &d, &t, err, sizeof err),
                        "default");
    assert_string_equal(clx_spec_parse("host", &p, &d, &t, err, sizeof err),
                        "host");
    assert_string_equal(clx_spec_parse(" HoSt ", &p, &d, &t, err, sizeof err),
                        "host");
    assert_string_equal(clx_spec_parse("0:0", &p, &d, &t, err, sizeof err),
                        "index");
    assert_int_equal(p, 0);
    assert_int_equal(d, 0);
    assert_string_equal(clx_spec_parse("12:3", &p, &d, &t, err, sizeof err),
                        "index");
    assert_int_equal(p, 12);
    assert_int_equal(d, 3);
    assert_string_equal(clx_spec_parse("cpu", &p, &d, &t, err, sizeof err),
                        "type");
    assert_true(t == CL_DEVICE_TYPE_CPU);
    assert_string_equal(clx_spec_parse("GPU", &p, &d, &t, err, sizeof err),
                        "type");
    assert_true(t == CL_DEVICE_TYPE_GPU);
    assert_string_equal(
        clx_spec_parse("accelerator", &p, &d, &t, err, sizeof err), "type");
    assert_true(t == CL_DEVICE_TYPE_ACCELERATOR);
    assert_string_equal(clx_spec_parse("pocl", &p, &d, &t, err, sizeof err),
                        "name");
    assert_string_equal(clx_spec_parse("POCL", &p, &d, &t, err, sizeof err),
                        "name");
    assert_string_equal(clx_spec_parse("hostile", &p, &d, &t, err, sizeof err),
                        "name");
    assert_string_equal(clx_spec_parse("gpus", &p, &d, &t, err, sizeof err),
                        "name");
    const char *bad[] = {"0:", ":0", ":", "a:b", "0:1:2", "-1:0", "0:x",
                         "99999999999:0", "0 : 0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        err[0] = '\0';
        if (clx_spec_parse(bad[i], &p, &d, &t, err, sizeof err) != NULL)
            fail_msg("\"%s\" parsed", bad[i]);
        assert_contains(err, "malformed");
        assert_contains(err, bad[i]);
    }
}

static void test_status_strings(void **state) {
    (void)state;
    struct {
        clxent_status status;
        const char *name, *text;
    } all[] = {
#define ROW_(name, code, text)                                                 \
    {CLXENT_STATUS_##name, "CLXENT_STATUS_" #name, text},
        CLXENT_STATUS_LIST(ROW_)
#undef ROW_
    };
    size_t n = sizeof all / sizeof all[0];
    assert_true(n >= 15);
    for (size_t i = 0; i < n; ++i) {
        assert_string_equal(clxent_status_name(all[i].status), all[i].name);
        assert_string_equal(clxent_status_string(all[i].status), all[i].text);
        assert_true(strlen(all[i].text) > 0);
        for (size_t j = 0; j < i; ++j) {
            assert_int_not_equal(all[i].status, all[j].status);
            assert_string_not_equal(clxent_status_string(all[i].status),
                                    clxent_status_string(all[j].status));
        }
    }
    assert_string_equal(clxent_status_string(CLXENT_STATUS_OK), "success");
    clxent_status unknown = (clxent_status)4242;
    assert_string_equal(clxent_status_name(unknown), "CLXENT_STATUS_UNKNOWN");
    assert_string_equal(clxent_status_string(unknown), "unknown status");
    assert_string_equal(clxent_status_name((clxent_status)-1),
                        "CLXENT_STATUS_UNKNOWN");
}

/* ---- resolve and list ---- */

static void test_devices_list(void **state) {
    (void)state;
    size_t n = 0;
    clxent_device_info *infos = list_devices(&n);
    assert_true(n >= 1);
    const clxent_device_info *host = &infos[n - 1];
    assert_int_equal(host->backend, CLXENT_BACKEND_HOST);
    assert_string_equal(host->spec, "host");
    assert_string_equal(host->type, "host");
    assert_int_equal(host->platform_index, -1);
    for (size_t i = 0; i + 1 < n; ++i) {
        const clxent_device_info *d = &infos[i];
        char spec[32];
        snprintf(spec, sizeof spec, "%d:%d", d->platform_index,
                 d->device_index);
        assert_int_equal(d->backend, CLXENT_BACKEND_OPENCL);
        assert_string_equal(d->spec, spec);
        if (d->errors[0]) fail_msg("%s: property errors: %s", spec, d->errors);
        assert_true(strlen(d->name) > 0);
        assert_true(strlen(d->platform) > 0);
        assert_true(strlen(d->device_version) > 0);
        assert_true(strlen(d->c_version) > 0);
        assert_true(d->compute_units > 0);
        assert_true(d->max_work_group_size > 0);
        assert_true(d->global_mem_bytes > 0);
        assert_true(d->max_alloc_bytes > 0);
        assert_true(d->local_mem_bytes > 0);
    }
    if (n == 1 && fx_device_required())
        fail_msg("CLXENT_REQUIRE_DEVICE=1 but only host is listed");

    /* Two-call idiom with a short array: fills what fits, counts all. */
    clxent_device_info one;
    memset(&one, 0xab, sizeof one);
    size_t count = 0;
    assert_int_equal(clxent_devices_list(&one, 1, &count), CLXENT_STATUS_OK);
    assert_int_equal(count, n);
    assert_string_equal(one.spec, infos[0].spec);
    assert_int_equal(clxent_devices_list(infos, 0, &count), CLXENT_STATUS_OK);
    assert_int_equal(count, n);
    assert_int_equal(clxent_devices_list(infos, n, NULL),
                     CLXENT_STATUS_NULL_POINTER);
    free(infos);
}

static void test_resolve_host(void **state) {
    (void)state;
    clxent_device_info info;
    char message[512] = "junk";
    assert_int_equal(clxent_device_resolve("host", &info, message,
                                           sizeof message),
                     CLXENT_STATUS_OK);
    assert_string_equal(message, "");
    assert_int_equal(info.backend, CLXENT_BACKEND_HOST);
    assert_string_equal(info.spec, "host");
    assert_contains(info.reason, "host");
    assert_int_equal(clxent_device_resolve("HOST", &info, NULL, 0),
                     CLXENT_STATUS_OK);
    assert_int_equal(info.backend, CLXENT_BACKEND_HOST);
    assert_int_equal(clxent_device_resolve("host", NULL, message,
                                           sizeof message),
                     CLXENT_STATUS_NULL_POINTER);
}

static void assert_lists_choices(const char *message,
                                 const clxent_device_info *infos, size_t n) {
    assert_contains(message, "choices:");
    for (size_t i = 0; i < n; ++i) assert_contains(message, infos[i].spec);
}

/* Every keyword, against what the machine really has. */
static void test_resolve_types(void **state) {
    (void)state;
    size_t n = 0;
    clxent_device_info *infos = list_devices(&n);
    const char *types[] = {"gpu", "cpu", "accelerator"};
    for (size_t t = 0; t < 3; ++t) {
        const clxent_device_info *first = NULL;
        for (size_t i = 0; i + 1 < n && !first; ++i)
            if (strcmp(infos[i].type, types[t]) == 0) first = &infos[i];
        clxent_device_info info;
        char message[2048];
        clxent_status st =
            clxent_device_resolve(types[t], &info, message, sizeof message);
        if (first) {
            assert_int_equal(st, CLXENT_STATUS_OK);
            assert_string_equal(info.spec, first->spec);
            char reason[128];
            snprintf(reason, sizeof reason,
                     "spec \"%s\": first OpenCL device of type %s", types[t],
                     types[t]);
            assert_string_equal(info.reason, reason);
        } else {
            assert_int_equal(st, CLXENT_STATUS_DEVICE_NOT_FOUND);
            assert_contains(message, types[t]);
            assert_lists_choices(message, infos, n);
        }
    }

    /* Default: first GPU, else first OpenCL device, else host. */
    const clxent_device_info *gpu = NULL;
    for (size_t i = 0; i + 1 < n && !gpu; ++i)
        if (strcmp(infos[i].type, "gpu") == 0) gpu = &infos[i];
    clxent_device_info info;
    assert_int_equal(clxent_device_resolve("", &info, NULL, 0),
                     CLXENT_STATUS_OK);
    if (gpu) {
        assert_string_equal(info.spec, gpu->spec);
        assert_string_equal(info.reason, "default: first GPU");
    } else if (n > 1) {
        assert_string_equal(info.spec, infos[0].spec);
        assert_string_equal(info.reason,
                            "default: no GPU, first OpenCL device");
    } else {
        assert_string_equal(info.spec, "host");
        assert_contains(info.reason, "default");
    }
    assert_int_equal(clxent_device_resolve(NULL, &info, NULL, 0),
                     CLXENT_STATUS_OK);
    free(infos);
}

static void test_resolve_names(void **state) {
    (void)state;
    size_t n = 0;
    clxent_device_info *infos = list_devices(&n);
    int has_pocl = 0;
    for (size_t i = 0; i + 1 < n; ++i)
        if (strstr(infos[i].platform, "Portable Computing Language"))
            has_pocl = 1;
    const char *specs[] = {"pocl", "POCL", " pocl "};
    for (size_t s = 0; s < 3; ++s) {
        clxent_device_info info;
        char message[2048];
        clxent_status st =
            clxent_device_resolve(specs[s], &info, message, sizeof message);
        if (has_pocl) {
            fx_assert_status(NULL, st, CLXENT_STATUS_OK);
            assert_contains(info.platform, "Portable Computing Language");
            assert_contains(info.reason, "name or vendor contains it");
            assert_string_equal(message, "");
        } else {
            assert_int_equal(st, CLXENT_STATUS_DEVICE_NOT_FOUND);
            assert_lists_choices(message, infos, n);
        }
    }
    /* A substring of the first device's name finds it, in any case. */
    if (n > 1 && strlen(infos[0].name) >= 4) {
        char part[8];
        snprintf(part, sizeof part, "%.4s", infos[0].name + 1);
        for (char *c = part; *c; ++c)
            if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
        clxent_device_info info;
        assert_int_equal(clxent_device_resolve(part, &info, NULL, 0),
                         CLXENT_STATUS_OK);
        assert_int_equal(info.backend, CLXENT_BACKEND_OPENCL);
    }

    clxent_device_info info;
    char message[2048];
    assert_int_equal(clxent_device_resolve("nosuch", &info, message,
                                           sizeof message),
                     CLXENT_STATUS_DEVICE_NOT_FOUND);
    assert_contains(message, "no device matches \"nosuch\"");
    assert_lists_choices(message, infos, n);
    for (size_t i = 0; i + 1 < n; ++i) assert_contains(message, infos[i].name);
    assert_int_equal(clxent_device_resolve("nosuch", &info, NULL, 0),
                     CLXENT_STATUS_DEVICE_NOT_FOUND);

    assert_int_equal(clxent_device_resolve("0:99", &info, message,
                                           sizeof message),
                     CLXENT_STATUS_DEVICE_NOT_FOUND);
    assert_contains(message, "0:99");
    assert_lists_choices(message, infos, n);
    const char *bad[] = {"0:", "a:b", ":1"};
    for (size_t i = 0; i < 3; ++i) {
        assert_int_equal(clxent_device_resolve(bad[i], &info, message,
                                               sizeof message),
                         CLXENT_STATUS_INVALID_ARGUMENT);
        assert_contains(message, "malformed");
        assert_contains(message, bad[i]);
        assert_lists_choices(message, infos, n);
    }
    /* A short message buffer truncates and stays terminated. */
    char small[16];
    memset(small, 'x', sizeof small);
    assert_int_equal(clxent_device_resolve("nosuch", &info, small,
                                           sizeof small),
                     CLXENT_STATUS_DEVICE_NOT_FOUND);
    assert_true(memchr(small, '\0', sizeof small) != NULL);
    free(infos);
}

/* "intel" picks Intel's runtime even when the ICD loader lists PoCL
 * first, whose device name also says Intel: platforms are matched before
 * devices. Runs where OCL_ICD_VENDORS holds both ICD files (CI's Intel
 * set-up), in a child `clxent devices` over a folder that lists PoCL's
 * first. */
static void test_resolve_platform_first(void **state) {
    (void)state;
    const char *vendors = getenv("OCL_ICD_VENDORS");
    char pocl[512], intel[512];
    snprintf(pocl, sizeof pocl, "%s/pocl.icd", vendors ? vendors : "");
    snprintf(intel, sizeof intel, "%s/intel.icd", vendors ? vendors : "");
    if (!vendors || access(pocl, R_OK) || access(intel, R_OK)) {
        printf("resolve_platform_first: needs OCL_ICD_VENDORS with "
               "pocl.icd and intel.icd\n");
        return; /* not skip(): CTest would call all of test_context skipped */
    }
    char dir[] = "/tmp/clxent_icd_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char command[2048];
    snprintf(command, sizeof command,
             "cp '%s' %s/a_pocl.icd && cp '%s' %s/b_intel.icd && "
             "for s in intel pocl; do OCL_ICD_VENDORS=%s %s/clxent devices "
             "--select $s | head -1; done > %s/out",
             pocl, dir, intel, dir, dir, CLXENT_BINARY_DIR, dir);
    assert_int_equal(system(command), 0);
    char out[600], line[2][300] = {"", ""};
    snprintf(out, sizeof out, "%s/out", dir);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    for (int i = 0; i < 2 && fgets(line[i], sizeof line[i], f); ++i) {}
    fclose(f);
    snprintf(command, sizeof command, "rm -rf %s", dir);
    assert_int_equal(system(command), 0);
    assert_contains(line[0], "(Intel(R) OpenCL)");
    assert_contains(line[1], "(Portable Computing Language)");
}

/* ---- contexts ---- */

static void test_context_host(void **state) {
    (void)state;
    clxent_context *ctx = fx_host_context();
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    assert_int_equal(info.backend, CLXENT_BACKEND_HOST);
    assert_string_equal(info.spec, "host");
    assert_string_equal(info.type, "host");
    assert_true(strlen(info.reason) > 0);
    assert_string_equal(clxent_context_message(ctx), "");
    assert_null(clxent_context_queue(ctx));
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    uint64_t ns = 7;
    fx_assert_status(ctx, clxent_context_last_time_ns(ctx, &ns),
                     CLXENT_STATUS_UNSUPPORTED);
    assert_contains(clxent_context_message(ctx),
                    "clxent_context_last_time_ns");
    /* The host backend has no cl_mem; it never touches the handle. */
    clxent_buffer *buf = (clxent_buffer *)1;
    fx_assert_status(ctx, clxent_buffer_wrap(ctx, (cl_mem)(uintptr_t)8, &buf),
                     CLXENT_STATUS_UNSUPPORTED);
    assert_null(buf);
    /* A successful call clears the previous message. */
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    assert_string_equal(clxent_context_message(ctx), "");
    clxent_context_destroy(ctx);
}

static void test_context_opencl(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    clxent_device_info info, want;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    const char *spec = getenv("CLXENT_TEST_DEVICE");
    assert_int_equal(
        clxent_device_resolve(spec && *spec ? spec : "", &want, NULL, 0),
        CLXENT_STATUS_OK);
    assert_int_equal(info.backend, CLXENT_BACKEND_OPENCL);
    assert_string_equal(info.spec, want.spec);
    assert_string_equal(info.name, want.name);
    assert_true(info.platform_index >= 0 && info.device_index >= 0);
    assert_true(strlen(info.reason) > 0);
    assert_true(info.max_alloc_bytes > 0);

    cl_command_queue q = clxent_context_queue(ctx);
    assert_non_null(q);
    cl_command_queue_properties props = 0;
    assert_int_equal(clGetCommandQueueInfo(q, CL_QUEUE_PROPERTIES,
                                           sizeof props, &props, NULL),
                     CL_SUCCESS);
    assert_true(props & CL_QUEUE_PROFILING_ENABLE);
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);

    /* No operation yet; then an empty operation is timed. */
    uint64_t ns = 1;
    fx_assert_status(ctx, clxent_context_last_time_ns(ctx, &ns),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    cl_event done = NULL;
    clxent_events events = {0, NULL, &done};
    clx_op op;
    memset(&op, 0, sizeof op);
    op.function = "test_context_opencl";
    op.events = &events;
    fx_assert_status(ctx, clx_cl_empty_op(ctx, &op), CLXENT_STATUS_OK);
    assert_non_null(done);
    assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
    fx_assert_status(ctx, clxent_context_last_time_ns(ctx, &ns),
                     CLXENT_STATUS_OK);
    /* The next operation waits on the previous one's event. */
    cl_event after = NULL;
    clxent_events chained = {1, &done, &after};
    op.events = &chained;
    fx_assert_status(ctx, clx_cl_empty_op(ctx, &op), CLXENT_STATUS_OK);
    assert_non_null(after);
    assert_true(after != done);
    assert_int_equal(clReleaseEvent(done), CL_SUCCESS);
    assert_int_equal(clReleaseEvent(after), CL_SUCCESS);
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    clxent_context_destroy(ctx);

    /* The type keyword creates a context on the same kind of device. */
    ctx = NULL;
    fx_assert_status(ctx, clxent_context_create(info.type, &ctx),
                     CLXENT_STATUS_OK);
    clxent_device_info typed;
    fx_assert_status(ctx, clxent_context_info(ctx, &typed), CLXENT_STATUS_OK);
    assert_string_equal(typed.type, info.type);
    assert_contains(typed.reason, "first OpenCL device of type");
    clxent_context_destroy(ctx);
}

static void test_context_env(void **state) {
    (void)state;
    const char *saved = getenv("CLXENT_DEVICE");
    char *copy = saved ? strdup(saved) : NULL;
    setenv("CLXENT_DEVICE", "host", 1);
    clxent_context *ctx = NULL;
    fx_assert_status(ctx, clxent_context_create(NULL, &ctx), CLXENT_STATUS_OK);
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    assert_int_equal(info.backend, CLXENT_BACKEND_HOST);
    assert_contains(info.reason, "CLXENT_DEVICE");
    clxent_context_destroy(ctx);

    setenv("CLXENT_DEVICE", "nosuch", 1);
    ctx = NULL;
    assert_int_equal(clxent_context_create(NULL, &ctx),
                     CLXENT_STATUS_DEVICE_NOT_FOUND);
    assert_non_null(ctx);
    assert_contains(clxent_context_message(ctx), "CLXENT_DEVICE");
    assert_contains(clxent_context_message(ctx), "nosuch");
    clxent_context_destroy(ctx);

    /* An explicit spec wins over the environment. */
    ctx = NULL;
    fx_assert_status(ctx, clxent_context_create("host", &ctx),
                     CLXENT_STATUS_OK);
    clxent_context_destroy(ctx);
    fx_restore_env("CLXENT_DEVICE", copy);
    free(copy);
}

/* sqlite3_open contract: a failed context answers message and destroy,
 * and every other call says it failed. */
static void test_context_create_failure(void **state) {
    (void)state;
    clxent_context *ctx = NULL;
    assert_int_equal(clxent_context_create("nosuch", &ctx),
                     CLXENT_STATUS_DEVICE_NOT_FOUND);
    assert_non_null(ctx);
    assert_contains(clxent_context_message(ctx), "clxent_context_create");
    assert_contains(clxent_context_message(ctx), "nosuch");
    assert_contains(clxent_context_message(ctx), "host");
    clxent_device_info info;
    assert_int_equal(clxent_context_info(ctx, &info),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    assert_contains(clxent_context_message(ctx), "failed");
    assert_null(clxent_context_queue(ctx));
    assert_int_equal(clxent_finish(ctx), CLXENT_STATUS_INVALID_ARGUMENT);
    uint64_t ns;
    assert_int_equal(clxent_context_last_time_ns(ctx, &ns),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    clxent_buffer *buf = (clxent_buffer *)1;
    assert_int_equal(clxent_buffer_create(ctx, 16, &buf),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    assert_null(buf);
    assert_contains(clxent_context_message(ctx), "clxent_buffer_create");
    clxent_context_destroy(ctx);

    ctx = NULL;
    assert_int_equal(clxent_context_create("0:", &ctx),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    assert_non_null(ctx);
    assert_contains(clxent_context_message(ctx), "malformed");
    clxent_context_destroy(ctx);

    ctx = NULL;
    assert_int_equal(clxent_context_create("0:99", &ctx),
                     CLXENT_STATUS_DEVICE_NOT_FOUND);
    assert_non_null(ctx);
    assert_contains(clxent_context_message(ctx), "choices:");
    clxent_context_destroy(ctx);

    ctx = NULL;
    assert_int_equal(clxent_context_create_from_queue(NULL, &ctx),
                     CLXENT_STATUS_NULL_POINTER);
    assert_non_null(ctx);
    assert_contains(clxent_context_message(ctx), "queue");
    assert_int_equal(clxent_finish(ctx), CLXENT_STATUS_INVALID_ARGUMENT);
    clxent_context_destroy(ctx);
}

/* NULL and zero-size arguments: a status, never a crash. */
static void test_null_arguments(void **state) {
    (void)state;
    clxent_device_info info;
    uint64_t ns;
    clxent_buffer *buf = NULL;
    char data[8] = {0};
    assert_int_equal(clxent_context_create("host", NULL),
                     CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_context_create_from_queue(NULL, NULL),
                     CLXENT_STATUS_NULL_POINTER);
    clxent_context_destroy(NULL);
    assert_int_equal(clxent_context_info(NULL, &info),
                     CLXENT_STATUS_NULL_POINTER);
    assert_non_null(clxent_context_message(NULL));
    assert_true(strlen(clxent_context_message(NULL)) > 0);
    assert_null(clxent_context_queue(NULL));
    assert_int_equal(clxent_finish(NULL), CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_context_last_time_ns(NULL, &ns),
                     CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_buffer_create(NULL, 8, &buf),
                     CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_buffer_wrap(NULL, NULL, &buf),
                     CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_buffer_write(NULL, NULL, 0, 8, data),
                     CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_buffer_read(NULL, NULL, 0, 8, data),
                     CLXENT_STATUS_NULL_POINTER);
    clxent_buffer_release(NULL);
    assert_int_equal(clxent_buffer_size(NULL), 0);
    assert_null(clxent_buffer_mem(NULL));
    assert_int_equal(clxent_devices_list(NULL, 0, NULL),
                     CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_device_resolve("host", NULL, NULL, 0),
                     CLXENT_STATUS_NULL_POINTER);

    clxent_context *ctx = fx_host_context();
    size_t n = 0;
#define CASE_(call, want_, fn_, arg_)                                          \
    do {                                                                       \
        clxent_status got_ = (call);                                           \
        if (got_ != (want_))                                                   \
            fail_msg("%s: %s, expected %s (%s)", #call,                        \
                     clxent_status_name(got_), clxent_status_name(want_),      \
                     clxent_context_message(ctx));                             \
        assert_contains(clxent_context_message(ctx), fn_);                     \
        assert_contains(clxent_context_message(ctx), arg_);                    \
        ++n;                                                                   \
    } while (0)
    CASE_(clxent_context_info(ctx, NULL), CLXENT_STATUS_NULL_POINTER,
          "clxent_context_info", "info");
    CASE_(clxent_context_last_time_ns(ctx, NULL), CLXENT_STATUS_NULL_POINTER,
          "clxent_context_last_time_ns", "nanoseconds");
    CASE_(clxent_buffer_create(ctx, 8, NULL), CLXENT_STATUS_NULL_POINTER,
          "clxent_buffer_create", "buffer");
    buf = (clxent_buffer *)1;
    CASE_(clxent_buffer_create(ctx, 0, &buf), CLXENT_STATUS_INVALID_ARGUMENT,
          "clxent_buffer_create", "bytes");
    assert_null(buf);
    CASE_(clxent_buffer_wrap(ctx, NULL, &buf), CLXENT_STATUS_NULL_POINTER,
          "clxent_buffer_wrap", "mem");
    CASE_(clxent_buffer_write(ctx, NULL, 0, 8, data),
          CLXENT_STATUS_NULL_POINTER, "clxent_buffer_write", "buffer");
    CASE_(clxent_buffer_read(ctx, NULL, 0, 8, data),
          CLXENT_STATUS_NULL_POINTER, "clxent_buffer_read", "buffer");
    fx_assert_status(ctx, clxent_buffer_create(ctx, 8, &buf),
                     CLXENT_STATUS_OK);
    CASE_(clxent_buffer_write(ctx, buf, 0, 8, NULL),
          CLXENT_STATUS_NULL_POINTER, "clxent_buffer_write", "source");
    CASE_(clxent_buffer_read(ctx, buf, 0, 8, NULL),
          CLXENT_STATUS_NULL_POINTER, "clxent_buffer_read", "destination");
#undef CASE_
    assert_int_equal(n, 9);
    /* Zero bytes need no pointer. */
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 0, 0, NULL),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 8, 0, NULL),
                     CLXENT_STATUS_OK);
    clxent_buffer_release(buf);
    clxent_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_devices_list),
        cmocka_unit_test(test_resolve_host),
        cmocka_unit_test(test_resolve_types),
        cmocka_unit_test(test_resolve_names),
        cmocka_unit_test(test_resolve_platform_first),
        cmocka_unit_test(test_context_host),
        cmocka_unit_test(test_context_opencl),
        cmocka_unit_test(test_context_env),
        cmocka_unit_test(test_context_create_failure),
        cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
