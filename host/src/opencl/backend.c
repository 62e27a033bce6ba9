/* The OpenCL backend behind the one backend interface (core/internal.h):
 * creation (the runtime state, then the tuning resolved once), dispatch
 * of operations to their family's file, and the tuning calls. The top of
 * the OpenCL layers: it calls into runtime/, tuning/, plan/ and ops/, and
 * nothing below calls it. */
#include "opencl/ops/loss.h"
#include "opencl/tuning/tuning.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env_lookup(const char *name) { return getenv(name); }

static char *env_copy(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return NULL;
    size_t n = strlen(v) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, v, n);
    return d;
}

static clx_device_key device_key(const clx_opencl_state *s) {
    clx_device_key k = {s->platform_name, s->vendor, s->device_name,
                        s->driver, s->is_gpu};
    return k;
}

/* The disk cache's folder: CLXENT_CACHE_DIR, else $XDG_CACHE_HOME/clxent,
 * else $HOME/.cache/clxent; none with CLXENT_CACHE=0 or no home. */
static clxent_status cache_folder(clxent_context *ctx, const char *function) {
    clx_opencl_state *s = ctx->cl;
    const char *off = getenv("CLXENT_CACHE");
    if (off && strcmp(off, "0") == 0) return CLXENT_STATUS_OK;
    /* "off" or "false" must not leave it on without a word */
    if (off && *off && strcmp(off, "1") != 0)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, function,
                        "CLXENT_CACHE is \"%.40s\": 0 turns the disk cache "
                        "of compiled programs off, 1 (or unset) leaves it on",
                        off);
    const char *dir = getenv("CLXENT_CACHE_DIR");
    const char *base = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    const char *suffix = "";
    if (!dir || !*dir) {
        if (base && *base) {
            dir = base;
            suffix = "/clxent";
        } else if (home && *home) {
            dir = home;
            suffix = "/.cache/clxent";
        } else {
            return CLXENT_STATUS_OK;
        }
    }
    size_t n = strlen(dir) + strlen(suffix) + 1;
    s->cache_dir = malloc(n);
    if (!s->cache_dir)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "out of host memory");
    snprintf(s->cache_dir, n, "%s%s", dir, suffix);
    return CLXENT_STATUS_OK;
}

/* The environment the context keeps from its creation on: the tuning,
 * the kernel folder, extra build options, the trace. */
static clxent_status configure(clxent_context *ctx, const char *function) {
    clx_opencl_state *s = ctx->cl;
    clx_device_key k = device_key(s);
    char err[1024];
    clxent_status st =
        clx_tuning_resolve(&k, env_lookup, &s->resolved, ctx->tuning,
                           sizeof ctx->tuning, err, sizeof err);
    if (st != CLXENT_STATUS_OK)
        return clx_fail(ctx, st, function, "tuning: %s", err);
    s->params = s->resolved;
    clx_derive(s);
    int missing = 0;
    if (getenv("CLXENT_KERNEL_DIR") && *getenv("CLXENT_KERNEL_DIR"))
        missing |= !(s->kernel_dir = env_copy("CLXENT_KERNEL_DIR"));
    if (getenv("CLXENT_BUILD_OPTIONS") && *getenv("CLXENT_BUILD_OPTIONS"))
        missing |= !(s->build_options = env_copy("CLXENT_BUILD_OPTIONS"));
    if (missing)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "out of host memory");
    const char *trace = getenv("CLXENT_TRACE");
    ctx->trace = trace && *trace && strcmp(trace, "0") != 0;
    return cache_folder(ctx, function);
}

clxent_status clx_opencl_create(clxent_context *ctx, cl_platform_id platform,
                                cl_device_id device, cl_command_queue queue) {
    const char *function =
        queue ? "clxent_context_create_from_queue" : "clxent_context_create";
    clxent_status st = clx_cl_state_create(ctx, platform, device, queue);
    if (st == CLXENT_STATUS_OK) st = configure(ctx, function);
    if (st != CLXENT_STATUS_OK) {
        clx_cl_state_destroy(ctx);
        return st;
    }
    ctx->cl_context = ctx->cl->context;
    ctx->queue = ctx->cl->queue;
    ctx->backend = &clx_opencl_backend;
    return CLXENT_STATUS_OK;
}

static void opencl_destroy(clxent_context *ctx) {
    clx_cl_state_destroy(ctx);
    ctx->cl_context = NULL;
    ctx->queue = NULL;
}

static clxent_status run_op(clxent_context *ctx, const clx_op *op) {
    switch (op->kind) {
    case CLX_OP_ROW_MAX:
    case CLX_OP_ROW_EXPSUM:
    case CLX_OP_LOG_SOFTMAX:
    case CLX_OP_SOFTMAX: return clx_op_softmax_family(ctx, op);
    case CLX_OP_NLL_FORWARD:
    case CLX_OP_NLL_BACKWARD: return clx_op_nll(ctx, op);
    case CLX_OP_CE_FORWARD:
    case CLX_OP_CE_BACKWARD:
    case CLX_OP_CE_FUSED: return clx_op_cross_entropy(ctx, op);
    case CLX_OP_COPY: return clx_op_copy(ctx, op);
    case CLX_OP_SHARD_PARTIAL:
    case CLX_OP_SHARD_COMBINE:
    case CLX_OP_SHARD_FINALIZE:
    case CLX_OP_SHARD_BACKWARD: return clx_op_shard(ctx, op);
    }
    return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, op->function,
                    "operation %d is unknown to the OpenCL backend",
                    (int)op->kind);
}

/* Strided per-row arrays go through staging memory (ops/stage.c). */
static clxent_status dispatch(clxent_context *ctx, const clx_op *op) {
    return clx_op_staged(ctx, op, run_op);
}

static clxent_status opencl_run(clxent_context *ctx, const clx_op *op) {
    clx_opencl_state *s = ctx->cl;
    clx_cl_op_begin(s);
    clxent_status st = dispatch(ctx, op);
    /* both halves are shorter than the line: cut, never overflow */
    int n = snprintf(ctx->last_kernels, sizeof ctx->last_kernels, "%.300s",
                     s->op_kernels[0] ? s->op_kernels : "marker");
    if (n > 0 && (size_t)n < sizeof ctx->last_kernels)
        snprintf(ctx->last_kernels + n, sizeof ctx->last_kernels - (size_t)n,
                 " (%.200s)", s->op_plan[0] ? s->op_plan : "no rows");
    snprintf(ctx->last_programs, sizeof ctx->last_programs, "%s",
             s->op_programs);
    return st;
}

static clxent_status opencl_finish(clxent_context *ctx) {
    clxent_status st = clx_cl_finish(ctx);
    return st != CLXENT_STATUS_OK ? st : clx_op_finish_checks(ctx);
}

static clxent_status opencl_param(clxent_context *ctx, const char *name,
                                  int set, long long *value) {
    static const char *const function = "clxent_context_set_param";
    clx_opencl_state *s = ctx->cl;
    if (!name) { /* reset */
        s->params = s->resolved;
        clx_derive(s);
        char *plus = strstr(ctx->tuning, " +set");
        if (plus) *plus = '\0';
        return CLXENT_STATUS_OK;
    }
    int id = clx_param_find(name);
    if (id < 0)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT,
                        set ? function : "clxent_context_get_param",
                        "name: no tuning parameter \"%s\" (clxent_param_name "
                        "lists them)",
                        name);
    if (!set) {
        *value = (long long)s->params.v[id];
        return CLXENT_STATUS_OK;
    }
    const char *bad = clx_param_check(id, (int64_t)*value);
    if (bad)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, function,
                        "value: %s = %lld %s (%lld to %lld: %s)", name,
                        *value, bad, (long long)clx_param_infos[id].lo,
                        (long long)clx_param_infos[id].hi,
                        clx_param_infos[id].meaning);
    s->params.v[id] = (int64_t)*value;
    clx_derive(s);
    if (!strstr(ctx->tuning, " +set")) {
        size_t n = strlen(ctx->tuning);
        snprintf(ctx->tuning + n, sizeof ctx->tuning - n, " +set");
    }
    return CLXENT_STATUS_OK;
}

/* Written to a temporary name and renamed: a reader never sees half a
 * file. */
static clxent_status opencl_save_tuning(clxent_context *ctx,
                                        const char *path, const char *name,
                                        const char *note) {
    static const char *const function = "clxent_context_save_tuning";
    clx_opencl_state *s = ctx->cl;
    char why[200];
    if (clx_tuning_check_text(name, note, why, sizeof why))
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, function, "%s",
                        why);
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "out of host memory");
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int bad = !f;
    clx_device_key k = device_key(s);
    clx_params base;
    char source[256], err[512];
    if (f && clx_tuning_baseline(&k, &base, source, sizeof source, err,
                                 sizeof err) != CLXENT_STATUS_OK)
        clx_params_defaults(&base, k.gpu); /* the database parsed at creation */
    if (f) bad = clx_tuning_write(f, name, &k, note, &s->params, &base) != 0;
    if (f && fclose(f) != 0) bad = 1;
    if (!bad && rename(tmp, path) != 0) bad = 1;
    clxent_status st = CLXENT_STATUS_OK;
    if (bad) {
        st = clx_fail(ctx, CLXENT_STATUS_IO_ERROR, function,
                      "path: cannot write \"%s\": %s", path, strerror(errno));
        remove(tmp);
    }
    free(tmp);
    return st;
}

const char *clx_opencl_param_name(size_t index, const char **meaning) {
    if (index >= CLX_PARAM_COUNT) return NULL;
    if (meaning) *meaning = clx_param_infos[index].meaning;
    return clx_param_infos[index].name;
}

const clx_backend_ops clx_opencl_backend = {
    .name = "opencl",
    .destroy = opencl_destroy,
    .buffer_create = clx_cl_buffer_create,
    .buffer_wrap_host = clx_cl_buffer_wrap_host,
    .buffer_wrap = clx_cl_buffer_wrap,
    .buffer_release = clx_cl_buffer_release,
    .buffer_write = clx_cl_buffer_write,
    .buffer_read = clx_cl_buffer_read,
    .run = opencl_run,
    .finish = opencl_finish,
    .memory = clx_cl_memory,
    .trim = clx_cl_trim,
    .last_time_ns = clx_cl_last_time_ns,
    .param = opencl_param,
    .save_tuning = opencl_save_tuning,
};
