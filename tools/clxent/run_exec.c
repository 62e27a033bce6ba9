/* clxent run's library calls: the inputs copied into buffers of the
 * context, one tensor call per output (cross-entropy fused when the
 * gradient is wanted), the outputs read back and written as float32
 * .npy files in PyTorch's shapes. */
#define _POSIX_C_SOURCE 200809L /* getpid, open */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *cmd = "run";

/* The buffers of one run; released together. */
typedef struct run_buffers {
    clxent_buffer *x, *targets, *weights, *loss, *lse, *grad;
} run_buffers;

/* A buffer of bytes (at least one element, so that empty tensors still
 * have one), filled from data when it is not NULL. */
static int make(clxent_context *ctx, size_t bytes, const void *data,
                clxent_buffer **out, const char *what) {
    clxent_status st = clxent_buffer_create(ctx, bytes ? bytes : 16, out);
    if (!st && data && bytes)
        st = clxent_buffer_write(ctx, *out, 0, bytes, data);
    return st ? cli_fail_status(cmd, ctx, st, what) : 0;
}

/* A new file beside path, created here so that no other file is
 * overwritten; malloc'd name, or NULL with errno set. */
static char *temporary(const char *path) {
    size_t size = strlen(path) + 32;
    char *name = malloc(size);
    for (int k = 0; name && k < 100; k++) {
        snprintf(name, size, "%s.tmp%ld-%d", path, (long)getpid(), k);
        int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0) {
            close(fd);
            return name;
        }
        if (errno != EEXIST) break;
    }
    int why = name ? errno : ENOMEM;
    free(name);
    errno = why;
    return NULL;
}

int run_stage(run_staged *s, const char *path, const void *raw, size_t n,
              clxent_dtype dtype, int ndim, const size_t *shape) {
    if (!path) return 0;
    if (s->n == RUN_MAX_OUTPUTS)
        return cli_fail(cmd, "%s: too many outputs", path);
    float *values = cli_to_f32(raw, n, dtype);
    if (!values) return cli_fail(cmd, "%s: out of memory", path);
    struct stat st;
    /* A device or a pipe (/dev/null, /dev/stdout) cannot be replaced by
     * a rename: it is written in place. */
    int in_place = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
    char *tmp = in_place ? NULL : temporary(path);
    char error[512];
    int rc = 0;
    if (!in_place && !tmp)
        rc = cli_fail(cmd, "%s: cannot create a file beside it: %s", path,
                      strerror(errno));
    else if (npy_write(tmp ? tmp : path, NPY_F32, ndim, shape, values, error,
                       sizeof error) != 0)
        rc = cli_fail(cmd, "%s: %s", path, error);
    free(values);
    if (rc) {
        if (tmp) remove(tmp);
        free(tmp);
        return rc;
    }
    s->path[s->n] = path;
    s->tmp[s->n++] = tmp;
    return 0;
}

int run_stage_finish(run_staged *s, int rc) {
    for (int i = 0; i < s->n; i++) {
        if (!s->tmp[i]) continue;
        if (!rc && rename(s->tmp[i], s->path[i]) != 0)
            rc = cli_fail(cmd, "%s: %s", s->path[i], strerror(errno));
        if (rc) remove(s->tmp[i]);
        free(s->tmp[i]);
    }
    memset(s, 0, sizeof *s);
    return rc;
}

/* Reads n values of dtype from buffer and stages them for path. */
static int save(clxent_context *ctx, run_staged *s, clxent_buffer *buffer,
                size_t n, clxent_dtype dtype, const char *path, int ndim,
                const size_t *shape) {
    if (!path) return 0;
    size_t bytes = n * clxent_dtype_size(dtype);
    void *raw = malloc(bytes ? bytes : 1);
    int rc = 0;
    clxent_status st = raw ? clxent_buffer_read(ctx, buffer, 0, bytes, raw)
                           : CLXENT_STATUS_OUT_OF_MEMORY;
    if (st) rc = cli_fail_status(cmd, ctx, st, path);
    else rc = run_stage(s, path, raw, n, dtype, ndim, shape);
    free(raw);
    return rc;
}

/* The op's calls; the status of the first that fails, *fn its name. */
static clxent_status call(const run_args *a, const run_inputs *in,
                          clxent_context *ctx, const run_buffers *b,
                          const char **fn) {
    const clxent_options *o = &a->opt;
    clxent_tensor x = run_tensor(in, b->x, in->classes, in->dtype);
    clxent_tensor grad = run_tensor(in, b->grad, in->classes, in->dtype);
    clxent_tensor none = {0};
    if (a->op == RUN_LOG_SOFTMAX || a->op == RUN_SOFTMAX) {
        if (in->x.count == 0) return CLXENT_STATUS_OK; /* nothing to do */
        *fn = a->op == RUN_SOFTMAX ? "clxent_softmax_nd"
                                   : "clxent_log_softmax_nd";
        return a->op == RUN_SOFTMAX
                   ? clxent_softmax_nd(ctx, &x, o, &grad, NULL)
                   : clxent_log_softmax_nd(ctx, &x, o, &grad, NULL);
    }
    clxent_tensor_targets t = {none, none};
    if (a->targets) {
        t.indices = run_tensor(in, b->targets, 1,
                               in->t.dtype == NPY_I64 ? CLXENT_I64
                                                      : CLXENT_I32);
    } else {
        t.probs = run_tensor(in, b->targets, in->classes, in->dtype);
    }
    clxent_vector w = {b->weights, 0, in->classes, CLXENT_F32};
    int per_row = o->loss.reduction == CLXENT_REDUCTION_NONE;
    clxent_tensor loss = per_row ? run_tensor(in, b->loss, 1, CLXENT_F32)
                                 : clxent_rows_of(b->loss, 1, 1, CLXENT_F32);
    clxent_tensor lse = b->lse ? run_tensor(in, b->lse, 1, CLXENT_F32) : none;
    clxent_status st;
    if (a->op == RUN_NLL_LOSS) {
        *fn = "clxent_nll_loss_nd";
        st = clxent_nll_loss_nd(ctx, &x, &t.indices, &w, o, &loss, NULL);
        if (st || !b->grad) return st;
        *fn = "clxent_nll_loss_backward_nd";
        return clxent_nll_loss_backward_nd(ctx, &x, &t.indices, &w, o, NULL,
                                           &grad, NULL);
    }
    if (!b->grad) {
        *fn = "clxent_cross_entropy_forward_nd";
        return clxent_cross_entropy_forward_nd(ctx, &x, &t, &w, o, &loss,
                                               &lse, NULL, NULL);
    }
    *fn = "clxent_cross_entropy_nd";
    return clxent_cross_entropy_nd(ctx, &x, &t, &w, o, NULL, &loss, &lse,
                                   NULL, &grad, NULL);
}

static void summary(const run_args *a, const run_inputs *in,
                    clxent_context *ctx, const float *loss, size_t nloss) {
    clxent_device_info info;
    memset(&info, 0, sizeof info);
    clxent_context_info(ctx, &info);
    printf("clxent run: %s (", run_op_names[a->op]);
    for (int k = 0; k < in->x.ndim; k++)
        printf("%zu%s", in->x.shape[k],
               in->x.ndim == 1 ? "," : k + 1 < in->x.ndim ? ", " : "");
    printf(") %s on %s (%s): ", clxent_dtype_name(in->dtype), info.spec,
           info.name);
    if (loss) {
        static const char *names[] = {"summed per-row", "sum", "mean"};
        double total = 0;
        for (size_t i = 0; i < nloss; i++) total += loss[i];
        printf("%s loss %.6g", names[a->opt.loss.reduction], total);
    } else {
        printf("dim %d", in->axis);
    }
    const char *labels[] = {", loss -> ", ", grad -> ", ", lse -> ",
                            ", out -> "};
    const char *paths[] = {a->loss_out, a->grad_out, a->lse_out, a->out};
    for (int k = 0; k < 4; k++)
        if (paths[k]) printf("%s%s", labels[k], paths[k]);
    printf("\n");
}

int run_exec(const run_args *a, run_inputs *in, clxent_context *ctx) {
    int is_loss = a->op == RUN_CROSS_ENTROPY || a->op == RUN_NLL_LOSS;
    size_t rows = in->outer * in->inner, es = clxent_dtype_size(in->dtype);
    size_t nloss = a->opt.loss.reduction == CLXENT_REDUCTION_NONE ? rows : 1;
    const void *targets = a->targets ? in->t.data : in->ps;
    size_t tbytes = a->targets ? in->t.count * npy_dtype_size(in->t.dtype)
                               : in->x.count * es;
    run_buffers b = {0};
    int rc = make(ctx, in->x.count * es, in->xs, &b.x, "--input");
    if (!rc && is_loss)
        rc = make(ctx, tbytes, targets, &b.targets,
                  a->targets ? "--targets" : "--probs");
    if (!rc && in->w32)
        rc = make(ctx, in->classes * 4, in->w32, &b.weights, "--weights");
    if (!rc && is_loss) rc = make(ctx, nloss * 4, NULL, &b.loss, "loss");
    if (!rc && a->lse_out) rc = make(ctx, rows * 4, NULL, &b.lse, "lse");
    if (!rc && (a->grad_out || !is_loss))
        rc = make(ctx, in->x.count * es, NULL, &b.grad, "grad/out");
    const char *fn = "";
    clxent_status st = rc ? CLXENT_STATUS_OK : call(a, in, ctx, &b, &fn);
    if (!rc && !st) st = clxent_finish(ctx); /* a deferred verdict */
    if (!rc && st == CLXENT_STATUS_TARGET_OUT_OF_RANGE) {
        char what[600];
        snprintf(what, sizeof what, "--targets %s", a->targets);
        rc = cli_fail_status(cmd, ctx, st, what);
    } else if (!rc && st) {
        rc = cli_fail_status(cmd, ctx, st, fn);
    }
    float *loss = is_loss && !rc ? malloc(nloss * 4 + 4) : NULL;
    if (!rc && is_loss && !loss) rc = cli_fail(cmd, "out of memory");
    if (!rc && is_loss) {
        st = clxent_buffer_read(ctx, b.loss, 0, nloss * 4, loss);
        if (st) rc = cli_fail_status(cmd, ctx, st, "loss");
    }
    int lnd = a->opt.loss.reduction == CLXENT_REDUCTION_NONE ? in->row_ndim
                                                             : 0;
    run_staged staged = {0};
    if (!rc) rc = save(ctx, &staged, b.loss, nloss, CLXENT_F32, a->loss_out,
                       lnd, in->row_shape);
    if (!rc) rc = save(ctx, &staged, b.grad, in->x.count, in->dtype,
                       is_loss ? a->grad_out : a->out, in->x.ndim,
                       in->x.shape);
    if (!rc) rc = save(ctx, &staged, b.lse, rows, CLXENT_F32, a->lse_out,
                       in->row_ndim, in->row_shape);
    rc = run_stage_finish(&staged, rc);
    if (!rc) summary(a, in, ctx, loss, nloss);
    free(loss);
    clxent_buffer_release(b.x);
    clxent_buffer_release(b.targets);
    clxent_buffer_release(b.weights);
    clxent_buffer_release(b.loss);
    clxent_buffer_release(b.lse);
    clxent_buffer_release(b.grad);
    return rc;
}
