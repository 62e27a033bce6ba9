/* The program cache of a context: kernels/<file> built once per option
 * set (the source with its includes resolved, source.c), and the kernels
 * created from each program, by name. */
#include "opencl/runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_text(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void clx_cl_programs_free(clx_opencl_state *s) {
    for (size_t i = 0; i < s->program_count; ++i) {
        clx_program_entry *e = &s->programs[i];
        for (size_t k = 0; k < e->kernel_count; ++k) {
            CLX_RELEASE(clReleaseKernel, e->kernels[k]);
            free(e->kernel_names[k]);
        }
        CLX_RELEASE(clReleaseProgram, e->program);
        free(e->file);
        free(e->options);
    }
    free(s->programs);
    s->programs = NULL;
    s->program_count = s->program_capacity = 0;
}

/* Options that break docs/semantics.md (full-precision exp/log, IEEE NaN and
 * infinities) are refused rather than silently used. */
static const char *forbidden_option(const char *options) {
    static const char *const bad[] = {"-cl-fast-relaxed-math",
                                      "-cl-unsafe-math-optimizations",
                                      "-cl-finite-math-only"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i)
        if (strstr(options, bad[i])) return bad[i];
    return NULL;
}

static clxent_status build_failure(clxent_context *ctx, cl_program program,
                                   const char *file, const char *options,
                                   cl_int err) {
    clxent_status st = clx_status_from_cl(err);
    if (st != CLXENT_STATUS_OUT_OF_MEMORY) st = CLXENT_STATUS_BUILD_FAILED;
    const char *dir = ctx->cl->kernel_dir;
    clx_fail(ctx, st, "clx_cl_kernel",
             "building %s/%s failed: clBuildProgram: %s (%d)\n"
             "build options: %s\nbuild log:\n",
             dir ? dir : "kernels (embedded)", file,
             clx_cl_error_name(err), (int)err, options);
    clx_opencl_state *s = ctx->cl;
    size_t size = 0;
    cl_int e = CLX_CL(clGetProgramBuildInfo(program, s->device,
                                            CL_PROGRAM_BUILD_LOG, 0, NULL,
                                            &size));
    char *log = e == CL_SUCCESS ? malloc(size + 1) : NULL;
    if (e == CL_SUCCESS && !log) e = CL_OUT_OF_HOST_MEMORY;
    if (e == CL_SUCCESS)
        e = CLX_CL(clGetProgramBuildInfo(program, s->device,
                                         CL_PROGRAM_BUILD_LOG, size, log,
                                         NULL));
    if (e == CL_SUCCESS) {
        log[size] = '\0';
        clx_append(ctx, "%s", log);
    } else {
        clx_append(ctx, "(unavailable: clGetProgramBuildInfo: %s (%d))",
                   clx_cl_error_name(e), (int)e);
    }
    free(log);
    return st;
}

/* The program of a disk cache entry, built for the device; NULL where
 * there is none or the driver refuses it (then it is built from source
 * and the entry replaced). */
static cl_program from_disk(clx_opencl_state *s, const char *identity,
                            const char *options) {
    unsigned char *binary = NULL;
    size_t size = 0;
    if (!clx_disk_cache_load(s->cache_dir, identity, &binary, &size))
        return NULL;
    cl_int err = CL_SUCCESS, status = CL_SUCCESS;
    const unsigned char *binaries[] = {binary};
    cl_program program = CLX_CL_CREATE(
        &err, clCreateProgramWithBinary(s->context, 1, &s->device, &size,
                                        binaries, &status, &err));
    free(binary);
    if (program && err == CL_SUCCESS && status == CL_SUCCESS)
        err = CLX_CL(clBuildProgram(program, 1, &s->device, options, NULL,
                                    NULL));
    if (!program || err != CL_SUCCESS || status != CL_SUCCESS) {
        CLX_RELEASE(clReleaseProgram, program);
        return NULL;
    }
    return program;
}

/* Stores a program built from source in the disk cache (best effort). */
static void to_disk(const clx_opencl_state *s, const char *identity,
                    cl_program program) {
    size_t size = 0;
    cl_int err = CLX_CL(clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES,
                                         sizeof size, &size, NULL));
    unsigned char *binary = err == CL_SUCCESS && size ? malloc(size) : NULL;
    if (!binary) return;
    unsigned char *binaries[] = {binary};
    err = CLX_CL(clGetProgramInfo(program, CL_PROGRAM_BINARIES,
                                  sizeof binaries, binaries, NULL));
    if (err == CL_SUCCESS)
        clx_disk_cache_store(s->cache_dir, identity, binary, size);
    free(binary);
}

/* Builds (file, options) and appends it to the cache. */
static clxent_status build_program(clxent_context *ctx, const char *file,
                                   const char *options,
                                   clx_program_entry **entry) {
    clx_opencl_state *s = ctx->cl;
    const char *extra = s->build_options;
    char full[2048];
    int n = snprintf(full, sizeof full, "-cl-std=CL1.2 %s %s", options,
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof full)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, "clx_cl_kernel",
                        "build options for kernels/%s are longer than %zu "
                        "characters",
                        file, sizeof full - 1);
    const char *bad = forbidden_option(full);
    if (bad)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, "clx_cl_kernel",
                        "build options \"%s\" contain %s, which clxent never "
                        "uses (full-precision exp/log, IEEE NaN and inf)",
                        full, bad);
    if (s->program_count == s->program_capacity) {
        size_t cap = s->program_capacity ? 2 * s->program_capacity : 8;
        clx_program_entry *grown = realloc(s->programs, cap * sizeof *grown);
        if (!grown)
            return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                            "out of host memory");
        s->programs = grown;
        s->program_capacity = cap;
    }
    char *source = NULL;
    clxent_status st = clx_cl_program_source(ctx, file, &source);
    if (st != CLXENT_STATUS_OK) return st;
    /* the disk cache first: a binary built before with this identity */
    char *identity = s->cache_dir && CLX_P(&s->params, disk_cache)
                         ? clx_disk_cache_identity(s, full, source)
                         : NULL;
    cl_program program = identity ? from_disk(s, identity, full) : NULL;
    int cached = program != NULL;
    cl_int err = CL_SUCCESS;
    if (!program) {
        const char *sources[] = {source};
        program = CLX_CL_CREATE(&err, clCreateProgramWithSource(
                                          s->context, 1, sources, NULL, &err));
    }
    free(source);
    if (!program || err != CL_SUCCESS) {
        free(identity);
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_kernel",
                        "clCreateProgramWithSource (kernels/%s): %s (%d)",
                        file, clx_cl_error_name(err), (int)err);
    }
    if (!cached) {
        err = CLX_CL(clBuildProgram(program, 1, &s->device, full, NULL, NULL));
        if (err != CL_SUCCESS) {
            free(identity);
            st = build_failure(ctx, program, file, full, err);
            CLX_RELEASE(clReleaseProgram, program);
            return st;
        }
        if (identity) to_disk(s, identity, program);
    }
    free(identity);
    clx_appendf(s->op_programs, sizeof s->op_programs, "%s%s %s",
                s->op_programs[0] ? ", " : "", file,
                cached ? "from the disk cache" : "compiled");
    clx_program_entry *e = &s->programs[s->program_count];
    memset(e, 0, sizeof *e);
    e->file = dup_text(file);
    e->options = dup_text(options);
    if (!e->file || !e->options) {
        free(e->file);
        free(e->options);
        CLX_RELEASE(clReleaseProgram, program);
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                        "out of host memory");
    }
    e->program = program;
    ++s->program_count;
    *entry = e;
    return CLXENT_STATUS_OK;
}

/* The kernel from the cache, or created and cached. */
static clxent_status find_kernel(clxent_context *ctx, const char *file,
                                 const char *options, const char *kernel_name,
                                 cl_kernel *kernel) {
    clx_opencl_state *s = ctx->cl;
    if (!options) options = "";
    *kernel = NULL;
    clx_program_entry *entry = NULL;
    size_t total_kernels = 0;
    for (size_t i = 0; i < s->program_count; ++i) {
        total_kernels += s->programs[i].kernel_count;
        if (!entry && strcmp(s->programs[i].file, file) == 0 &&
            strcmp(s->programs[i].options, options) == 0)
            entry = &s->programs[i];
    }
    if (!entry) {
        clxent_status st = build_program(ctx, file, options, &entry);
        if (st != CLXENT_STATUS_OK) return st;
    }
    for (size_t k = 0; k < entry->kernel_count; ++k)
        if (strcmp(entry->kernel_names[k], kernel_name) == 0) {
            *kernel = entry->kernels[k];
            return CLXENT_STATUS_OK;
        }
    size_t cap = sizeof entry->kernels / sizeof entry->kernels[0];
    if (entry->kernel_count == cap)
        return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, "clx_cl_kernel",
                        "more than %zu kernels from kernels/%s", cap, file);
    cl_int err = CL_SUCCESS;
    cl_kernel k =
        CLX_CL_CREATE(&err, clCreateKernel(entry->program, kernel_name, &err));
    if (!k || err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_kernel",
                        "clCreateKernel (\"%s\" from kernels/%s): %s (%d)",
                        kernel_name, file, clx_cl_error_name(err), (int)err);
    if (total_kernels == 0) {
        /* The first kernel stands in for all: the multiple is a property
         * of the device's SIMD width in practice. */
        size_t multiple = 0;
        err = CLX_CL(clGetKernelWorkGroupInfo(
            k, s->device, CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE,
            sizeof multiple, &multiple, NULL));
        if (err != CL_SUCCESS) {
            CLX_RELEASE(clReleaseKernel, k);
            return clx_fail(
                ctx, clx_status_from_cl(err), "clx_cl_kernel",
                "clGetKernelWorkGroupInfo (\"%s\", CL_KERNEL_PREFERRED_WORK_"
                "GROUP_SIZE_MULTIPLE): %s (%d)",
                kernel_name, clx_cl_error_name(err), (int)err);
        }
        s->preferred_multiple = multiple ? multiple : 1;
    }
    char *name = dup_text(kernel_name);
    if (!name) {
        CLX_RELEASE(clReleaseKernel, k);
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                        "out of host memory");
    }
    entry->kernel_names[entry->kernel_count] = name;
    entry->kernels[entry->kernel_count] = k;
    ++entry->kernel_count;
    *kernel = k;
    return CLXENT_STATUS_OK;
}

/* The cached name of a kernel, for messages (no OpenCL call). */
const char *clx_cl_kernel_name(const clx_opencl_state *s, cl_kernel kernel) {
    for (size_t i = 0; i < s->program_count; ++i)
        for (size_t k = 0; k < s->programs[i].kernel_count; ++k)
            if (s->programs[i].kernels[k] == kernel)
                return s->programs[i].kernel_names[k];
    return "?";
}

clxent_status clx_cl_kernel(clxent_context *ctx, const char *file,
                            const char *options, const char *name,
                            cl_kernel *kernel, size_t *max_group) {
    clxent_status st = find_kernel(ctx, file, options, name, kernel);
    if (st != CLXENT_STATUS_OK || !max_group) return st;
    size_t m = 0;
    cl_int err = CLX_CL(clGetKernelWorkGroupInfo(
        *kernel, ctx->cl->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof m, &m,
        NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_kernel",
                        "clGetKernelWorkGroupInfo (%s, "
                        "CL_KERNEL_WORK_GROUP_SIZE): %s (%d)",
                        name, clx_cl_error_name(err), (int)err);
    *max_group = m ? m : 1;
    return CLXENT_STATUS_OK;
}
