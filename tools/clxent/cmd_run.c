/* clxent run: the fused cross-entropy (loss, gradient, log-sum-exp) on
 * .npy inputs, on any device, with every option of the library. */
#include "commands.h"
#include "npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *cmd = "run";

static void help(void) {
    printf(
        "Usage: clxent run [--device SPEC] --logits X.npy (--targets Y.npy | "
        "--probs P.npy)\n"
        "                  [--weights W.npy] [--reduction none|sum|mean]\n"
        "                  [--ignore-index N] [--label-smoothing E] "
        "[--z-loss Z]\n"
        "                  [--grad-scale G] [--dtype f32|f16|bf16]\n"
        "                  [--loss-out L.npy] [--grad-out DX.npy] "
        "[--lse-out LSE.npy]\n\n"
        "Cross-entropy loss and its gradient with PyTorch semantics\n"
        "(F.cross_entropy). Inputs are little-endian C-order .npy files:\n"
        "  X  (N, C) float32 or float16 logits\n"
        "  Y  (N,) int32 or int64 class indices, or\n"
        "  P  (N, C) float32 or float16 target probabilities\n"
        "  W  (C,) float32 or float16 class weights\n"
        "--dtype is the storage type on the device (default: the logits' "
        "type;\nbf16 rounds to nearest even). Defaults: reduction mean, "
        "ignore-index -100,\nlabel-smoothing 0, z-loss 0, grad-scale 1 (the "
        "upstream gradient).\nOutputs are float32: loss () for sum/mean or "
        "(N,) for none, grad (N, C),\nlse (N,). Exit 1 on bad input, 2 on "
        "usage errors.\n");
}

typedef struct run_args {
    const char *device, *logits, *targets, *probs, *weights;
    const char *loss_out, *grad_out, *lse_out;
    clxent_loss_options opt;
    clxent_dtype dtype; /* 0: the logits' type */
    int ignore_given;
} run_args;

static int parse_args(int argc, char **argv, run_args *a) {
    memset(a, 0, sizeof *a);
    clxent_loss_options_init(&a->opt);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = 0;
        if (cli_is_help(argv[i])) { help(); return -1; }
#define PATH(flag, field)                                                      \
    if ((r = cli_option(cmd, argc, argv, &i, flag, &v))) {                     \
        if (r != 1) return r;                                                  \
        a->field = v;                                                          \
        continue;                                                              \
    }
        PATH("--device", device)
        PATH("--logits", logits)
        PATH("--targets", targets)
        PATH("--probs", probs)
        PATH("--weights", weights)
        PATH("--loss-out", loss_out)
        PATH("--grad-out", grad_out)
        PATH("--lse-out", lse_out)
#undef PATH
        if ((r = cli_option(cmd, argc, argv, &i, "--reduction", &v))) {
            if (r != 1) return r;
            if (strcmp(v, "none") == 0) a->opt.reduction = CLXENT_REDUCTION_NONE;
            else if (strcmp(v, "sum") == 0) a->opt.reduction = CLXENT_REDUCTION_SUM;
            else if (strcmp(v, "mean") == 0) a->opt.reduction = CLXENT_REDUCTION_MEAN;
            else return cli_usage_error(cmd, "--reduction: '%s' is not none, "
                                        "sum or mean", v);
        } else if ((r = cli_option(cmd, argc, argv, &i, "--ignore-index", &v))) {
            if (r != 1) return r;
            if ((r = cli_parse_int64(cmd, "--ignore-index", v,
                                     &a->opt.ignore_index)))
                return r;
            a->ignore_given = 1;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--label-smoothing", &v))) {
            if (r != 1) return r;
            if ((r = cli_parse_float(cmd, "--label-smoothing", v,
                                     &a->opt.label_smoothing)))
                return r;
            if (a->opt.label_smoothing < 0 || a->opt.label_smoothing > 1)
                return cli_usage_error(cmd, "--label-smoothing must be in "
                                       "[0, 1], not %s", v);
        } else if ((r = cli_option(cmd, argc, argv, &i, "--z-loss", &v))) {
            if (r != 1) return r;
            if ((r = cli_parse_float(cmd, "--z-loss", v, &a->opt.z_loss)))
                return r;
            if (a->opt.z_loss < 0)
                return cli_usage_error(cmd, "--z-loss must be >= 0, not %s", v);
        } else if ((r = cli_option(cmd, argc, argv, &i, "--grad-scale", &v))) {
            if (r != 1) return r;
            if ((r = cli_parse_float(cmd, "--grad-scale", v,
                                     &a->opt.grad_scale)))
                return r;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--dtype", &v))) {
            if (r != 1) return r;
            if ((r = cli_parse_dtype(cmd, "--dtype", v, &a->dtype))) return r;
        } else {
            return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
        }
    }
    if (!a->logits) return cli_usage_error(cmd, "--logits is required");
    if (!a->targets == !a->probs)
        return cli_usage_error(cmd, "give exactly one of --targets and --probs");
    if (a->probs && a->ignore_given)
        return cli_usage_error(cmd, "--ignore-index applies to --targets "
                               "(class indices) only");
    return 0;
}

static void shape_text(char *buf, size_t size, int ndim, const size_t *shape) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%zu%s", shape[i],
                                 ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
    if (used < size) snprintf(buf + used, size - used, ")");
}

/* A float .npy of rank ndim as f32 values; want (if not NULL) is the
 * shape it must have. */
static int load_float(const char *path, const char *flag, int ndim,
                      const size_t *want, npy_array *arr, float **out) {
    char error[512], got[96], expected[96];
    *out = NULL;
    if (npy_read(path, arr, error, sizeof error) != 0)
        return cli_fail(cmd, "%s %s", flag, error);
    if (arr->dtype != NPY_F32 && arr->dtype != NPY_F16)
        return cli_fail(cmd, "%s %s: dtype must be float32 or float16",
                        flag, path);
    if (arr->ndim != ndim)
        return cli_fail(cmd, "%s %s: expected a %d-D array, got %d "
                        "dimensions", flag, path, ndim, arr->ndim);
    for (int i = 0; want && i < ndim; i++)
        if (arr->shape[i] != want[i]) {
            shape_text(got, sizeof got, ndim, arr->shape);
            shape_text(expected, sizeof expected, ndim, want);
            return cli_fail(cmd, "%s %s: shape %s does not match the logits, "
                            "expected %s", flag, path, got, expected);
        }
    *out = cli_to_f32(arr->data, arr->count,
                      arr->dtype == NPY_F32 ? CLXENT_F32 : CLXENT_F16);
    return *out ? 0 : cli_fail(cmd, "out of memory");
}

static int write_out(const char *path, int ndim, const size_t *shape,
                     const float *data) {
    char error[512];
    if (!path) return 0;
    if (npy_write(path, NPY_F32, ndim, shape, data, error, sizeof error) != 0)
        return cli_fail(cmd, "%s", error);
    return 0;
}

typedef struct run_data {
    npy_array x_arr, t_arr, p_arr, w_arr;
    float *x, *p, *w, *loss, *lse, *grad;
    void *x_dev, *p_dev, *grad_dev;
} run_data;

static void run_data_free(run_data *d) {
    npy_free(&d->x_arr); npy_free(&d->t_arr);
    npy_free(&d->p_arr); npy_free(&d->w_arr);
    free(d->x); free(d->p); free(d->w); free(d->loss); free(d->lse);
    free(d->grad); free(d->x_dev); free(d->p_dev); free(d->grad_dev);
}

static int load_inputs(const run_args *a, run_data *d, size_t *n, size_t *c) {
    char error[512];
    int rc = load_float(a->logits, "--logits", 2, NULL, &d->x_arr, &d->x);
    if (rc) return rc;
    *n = d->x_arr.shape[0];
    *c = d->x_arr.shape[1];
    if (*c == 0)
        return cli_fail(cmd, "--logits %s: no classes (C = 0)", a->logits);
    if (a->targets) {
        if (npy_read(a->targets, &d->t_arr, error, sizeof error) != 0)
            return cli_fail(cmd, "--targets %s", error);
        if (d->t_arr.dtype != NPY_I32 && d->t_arr.dtype != NPY_I64)
            return cli_fail(cmd, "--targets %s: dtype must be int32 or int64",
                            a->targets);
        if (d->t_arr.ndim != 1 || d->t_arr.shape[0] != *n)
            return cli_fail(cmd, "--targets %s: expected shape (%zu,) to "
                            "match the logits", a->targets, *n);
    } else if ((rc = load_float(a->probs, "--probs", 2, d->x_arr.shape,
                                &d->p_arr, &d->p))) {
        return rc;
    }
    if (a->weights && (rc = load_float(a->weights, "--weights", 1, c,
                                       &d->w_arr, &d->w)))
        return rc;
    return 0;
}

int clxent_cmd_run(int argc, char **argv) {
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? CLI_OK : rc;
    run_data d;
    memset(&d, 0, sizeof d);
    size_t n = 0, c = 0;
    clxent_context *ctx = NULL;
    if ((rc = load_inputs(&a, &d, &n, &c))) goto out;
    clxent_dtype dtype = a.dtype ? a.dtype
                         : d.x_arr.dtype == NPY_F16 ? CLXENT_F16 : CLXENT_F32;
    size_t nloss = a.opt.reduction == CLXENT_REDUCTION_NONE ? n : 1;
    d.x_dev = cli_from_f32(d.x, n * c, dtype);
    d.p_dev = d.p ? cli_from_f32(d.p, n * c, dtype) : NULL;
    d.grad_dev = malloc(n * c * clxent_dtype_size(dtype) + 1);
    d.loss = malloc((nloss + 1) * sizeof(float));
    d.lse = malloc((n + 1) * sizeof(float));
    if (!d.x_dev || (d.p && !d.p_dev) || !d.grad_dev || !d.loss || !d.lse) {
        rc = cli_fail(cmd, "out of memory for %zux%zu", n, c);
        goto out;
    }
    if ((rc = cli_open_context(cmd, a.device, &ctx))) goto out;
    clxent_dtype tdtype = !a.targets ? dtype
                          : d.t_arr.dtype == NPY_I64 ? CLXENT_I64 : CLXENT_I32;
    clxent_status st = clxent_cross_entropy_host(
        ctx, n, c, dtype, d.x_dev, tdtype, a.targets ? d.t_arr.data : d.p_dev,
        d.w, &a.opt, d.loss, d.lse, d.grad_dev);
    if (st == CLXENT_STATUS_TARGET_OUT_OF_RANGE) {
        char what[600];
        snprintf(what, sizeof what, "--targets %s", a.targets);
        rc = cli_fail_status(cmd, ctx, st, what);
        goto out;
    }
    if (st != CLXENT_STATUS_OK) {
        rc = cli_fail_status(cmd, ctx, st, "clxent_cross_entropy");
        goto out;
    }
    if (!(d.grad = cli_to_f32(d.grad_dev, n * c, dtype))) {
        rc = cli_fail(cmd, "out of memory");
        goto out;
    }
    size_t shape[2] = {n, c};
    int loss_ndim = a.opt.reduction == CLXENT_REDUCTION_NONE ? 1 : 0;
    if ((rc = write_out(a.loss_out, loss_ndim, shape, d.loss)) ||
        (rc = write_out(a.grad_out, 2, shape, d.grad)) ||
        (rc = write_out(a.lse_out, 1, shape, d.lse)))
        goto out;
    clxent_device_info info;
    memset(&info, 0, sizeof info);
    clxent_context_info(ctx, &info);
    double total = 0;
    for (size_t i = 0; i < nloss; i++) total += d.loss[i];
    static const char *names[] = {"none", "sum", "mean"};
    printf("clxent run: %zux%zu %s on %s (%s): %s loss %.6g%s%s%s%s%s%s\n",
           n, c, clxent_dtype_name(dtype), info.spec, info.name,
           a.opt.reduction == CLXENT_REDUCTION_NONE ? "summed per-row"
                                                    : names[a.opt.reduction],
           total, a.loss_out ? ", loss -> " : "", a.loss_out ? a.loss_out : "",
           a.grad_out ? ", grad -> " : "", a.grad_out ? a.grad_out : "",
           a.lse_out ? ", lse -> " : "", a.lse_out ? a.lse_out : "");
out:
    clxent_context_destroy(ctx);
    run_data_free(&d);
    return rc;
}
