/* clxent run's inputs: the .npy files read, their shapes checked against
 * each other as PyTorch checks them, the values converted to the storage
 * type. Every mismatch names the file, the shape it has and the shape it
 * needs. */
#include "run.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *cmd = "run";

/* "(6, 37)", "(6,)" or "()", as Python prints a shape. */
static const char *shape_text(char *buf, size_t size, int ndim,
                              const size_t *shape) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%zu%s", shape[i],
                                 ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
    if (used < size) snprintf(buf + used, size - used, ")");
    return buf;
}

/* Element i of a, exactly (every file type fits a double). */
static double value_at(const npy_array *a, size_t i) {
    switch (a->dtype) {
    case NPY_F16: return cli_load(a->data, i, CLXENT_F16);
    case NPY_F64: return ((const double *)a->data)[i];
    default: return cli_load(a->data, i, CLXENT_F32);
    }
}

/* a's values in dtype (malloc'd), saying so when float64 is narrowed. A
 * finite value that would become inf is an error: NaN and inf in the
 * file are data and pass through. */
static int convert(const char *flag, const char *path, const npy_array *a,
                   clxent_dtype dtype, void **out) {
    size_t elem = clxent_dtype_size(dtype);
    if (a->dtype == NPY_F64)
        fprintf(stderr, "clxent run: note: %s %s is float64; converted to "
                "%s\n", flag, path, clxent_dtype_name(dtype));
    *out = malloc(a->count ? a->count * elem : 1);
    if (!*out) return cli_fail(cmd, "%s %s: out of memory", flag, path);
    for (size_t i = 0; i < a->count; i++) {
        double v = value_at(a, i);
        cli_store(*out, i, dtype, cli_fits_f32(v) ? (float)v : INFINITY);
        if (!isfinite(v) || isfinite(cli_load(*out, i, dtype))) continue;
        size_t at[NPY_MAX_DIMS], rest = i;
        for (int k = a->ndim - 1; k >= 0; k--) {
            at[k] = rest % a->shape[k];
            rest /= a->shape[k];
        }
        char pos[200];
        double largest = dtype == CLXENT_F16 ? 65504.0
                         : dtype == CLXENT_BF16 ? 0x1.fep127 : FLT_MAX;
        free(*out);
        *out = NULL;
        return cli_fail(cmd, "%s %s: element %zu, at %s, is %.9g: finite "
                        "but beyond %s's range (largest finite %g)", flag,
                        path, i, shape_text(pos, sizeof pos, a->ndim, at), v,
                        clxent_dtype_name(dtype), largest);
    }
    return 0;
}

static int read_npy(const char *flag, const char *path, npy_array *a,
                    int floating) {
    char error[512];
    if (npy_read(path, a, error, sizeof error) != 0)
        return cli_fail(cmd, "%s %s", flag, error);
    int is_float = a->dtype == NPY_F32 || a->dtype == NPY_F16 ||
                   a->dtype == NPY_F64;
    if (floating && !is_float)
        return cli_fail(cmd, "%s %s: dtype %s; float32, float16 or float64 "
                        "expected", flag, path, npy_dtype_name(a->dtype));
    if (!floating && is_float)
        return cli_fail(cmd, "%s %s: dtype %s; class indices must be int32 "
                        "or int64", flag, path, npy_dtype_name(a->dtype));
    return 0;
}

/* The shape file a must have: want (ndim, shape), from the input's. */
static int same_shape(const char *flag, const char *path, const npy_array *a,
                      int ndim, const size_t *shape, const npy_array *x,
                      const char *what) {
    int same = a->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = a->shape[k] == shape[k];
    if (same) return 0;
    char got[200], want[200], xs[200];
    return cli_fail(cmd, "%s %s: shape %s does not match the input's %s: "
                    "%s %s expected", flag, path,
                    shape_text(got, sizeof got, a->ndim, a->shape),
                    shape_text(xs, sizeof xs, x->ndim, x->shape), what,
                    shape_text(want, sizeof want, ndim, shape));
}

/* The class axis and outer x classes x inner of the input. */
static int layout(const run_args *a, run_inputs *in) {
    const npy_array *x = &in->x;
    char xs[200];
    int n = x->ndim;
    if (a->op == RUN_CROSS_ENTROPY || a->op == RUN_NLL_LOSS) {
        if (n == 0)
            return cli_fail(cmd, "--input %s: a 0-d input has no class axis; "
                            "%s takes (C), (N, C) or (N, C, d1..dk)",
                            a->input, run_op_names[a->op]);
        in->axis = n == 1 ? 0 : 1;
    } else {
        int64_t lo = n ? -n : -1, hi = n ? n - 1 : 0;
        if (a->dim < lo || a->dim > hi)
            return cli_fail(cmd, "--dim %lld is out of range for the %d-d "
                            "input %s %s (expected %lld to %lld)",
                            (long long)a->dim, n, a->input,
                            shape_text(xs, sizeof xs, n, x->shape),
                            (long long)lo, (long long)hi);
        in->axis = n == 0 ? 0 : (int)(a->dim < 0 ? a->dim + n : a->dim);
    }
    in->outer = in->inner = 1;
    in->classes = n ? x->shape[in->axis] : 1;
    in->row_ndim = 0;
    for (int k = 0; k < n; k++) {
        if (k == in->axis) continue;
        *(k < in->axis ? &in->outer : &in->inner) *= x->shape[k];
        in->row_shape[in->row_ndim++] = x->shape[k];
    }
    if (in->classes == 0 && a->op != RUN_LOG_SOFTMAX && a->op != RUN_SOFTMAX)
        return cli_fail(cmd, "--input %s: no classes (C = 0 in %s)",
                        a->input, shape_text(xs, sizeof xs, n, x->shape));
    return 0;
}

clxent_tensor run_tensor(const run_inputs *in, clxent_buffer *buffer,
                         size_t classes, clxent_dtype dtype) {
    clxent_tensor t =
        clxent_tensor_of(buffer, in->outer, classes, in->inner, dtype);
    unsigned rank = in->x.ndim ? (unsigned)(in->x.ndim - in->axis - 1) : 0;
    if (rank <= CLXENT_MAX_INNER_DIMS) {
        t.inner_rank = rank;
        for (unsigned k = 0; k < rank; k++)
            t.inner_dims[k] = in->x.shape[in->axis + 1 + k];
    }
    return t;
}

int run_load(const run_args *a, run_inputs *in) {
    memset(in, 0, sizeof *in);
    int rc = read_npy("--input", a->input, &in->x, 1);
    if (!rc) rc = layout(a, in);
    if (rc) return rc;
    in->dtype = a->dtype ? a->dtype
                : in->x.dtype == NPY_F16 ? CLXENT_F16 : CLXENT_F32;
    if ((rc = convert("--input", a->input, &in->x, in->dtype, &in->xs)))
        return rc;
    if (a->targets &&
        ((rc = read_npy("--targets", a->targets, &in->t, 0)) ||
         (rc = same_shape("--targets", a->targets, &in->t, in->row_ndim,
                          in->row_shape, &in->x, "class indices of shape"))))
        return rc;
    if (a->probs &&
        ((rc = read_npy("--probs", a->probs, &in->p, 1)) ||
         (rc = same_shape("--probs", a->probs, &in->p, in->x.ndim,
                          in->x.shape, &in->x, "probabilities of shape")) ||
         (rc = convert("--probs", a->probs, &in->p, in->dtype, &in->ps))))
        return rc;
    if (a->weights &&
        ((rc = read_npy("--weights", a->weights, &in->w, 1)) ||
         (rc = same_shape("--weights", a->weights, &in->w, 1, &in->classes,
                          &in->x, "one weight per class,")) ||
         (rc = convert("--weights", a->weights, &in->w, CLXENT_F32,
                       (void **)&in->w32))))
        return rc;
    return 0;
}

void run_inputs_free(run_inputs *in) {
    npy_free(&in->x);
    npy_free(&in->t);
    npy_free(&in->p);
    npy_free(&in->w);
    free(in->xs);
    free(in->ps);
    free(in->w32);
}
