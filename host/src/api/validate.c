/* Argument checks shared by the public entry points: descriptors against
 * their buffers, dtypes, options, events, overlaps. Every failure names
 * the function and the argument; nothing is enqueued before they pass. */
#include "api/validate.h"


#include <math.h>
#include <stddef.h>
#include <string.h>

/* Kernels index rows and columns with 32-bit integers; element offsets
 * are 64-bit. */
#define CLX_MAX_DIM ((size_t)0x7fffffff)

clxent_status clx_check_context(clxent_context *ctx, const char *fn) {
    if (!ctx) return CLXENT_STATUS_NULL_POINTER;
    if (!ctx->backend)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "ctx: the context failed to create; only "
                        "clxent_context_message and clxent_context_destroy "
                        "may be called on it");
    clx_clear(ctx);
    return CLXENT_STATUS_OK;
}

int clx_is_float_dtype(clxent_dtype d) {
    return d == CLXENT_F32 || d == CLXENT_F16 || d == CLXENT_BF16;
}

static clxent_status check_buffer(clxent_context *ctx, const char *fn,
                                  const char *name, const clxent_buffer *buf) {
    if (!buf)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn,
                        "%s: buffer is NULL", name);
    if (!clx_owns(ctx, buf))
        return clx_fail(ctx, CLXENT_STATUS_WRONG_CONTEXT, fn,
                        "%s: the buffer belongs to another context", name);
    return CLXENT_STATUS_OK;
}

/* Checks that `elements` elements of `dtype` starting at element `offset`
 * fit in the buffer; sets the byte extent [*begin, *end). */
static clxent_status check_extent(clxent_context *ctx, const char *fn,
                                  const char *name, const clxent_buffer *buf,
                                  size_t offset, size_t span,
                                  clxent_dtype dtype, size_t *begin,
                                  size_t *end) {
    size_t es = clxent_dtype_size(dtype), last, first_byte, end_byte;
    if (!clx_add_size(offset, span, &last) ||
        !clx_mul_size(offset, es, &first_byte) ||
        !clx_mul_size(last, es, &end_byte))
        return clx_fail(ctx, CLXENT_STATUS_SIZE_OVERFLOW, fn,
                        "%s: offset %zu + %zu elements of %s overflows size_t",
                        name, offset, span, clxent_dtype_name(dtype));
    if (end_byte > buf->bytes)
        return clx_fail(ctx, CLXENT_STATUS_BUFFER_TOO_SMALL, fn,
                        "%s: needs bytes [%zu, %zu) but the buffer holds %zu",
                        name, first_byte, end_byte, buf->bytes);
    *begin = first_byte;
    *end = end_byte;
    return CLXENT_STATUS_OK;
}

clxent_status clx_check_matrix(clxent_context *ctx, const char *fn,
                               const char *name, const clxent_matrix *m,
                               clx_dtype_class allowed, clx_extent *extent) {
    if (!m)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn,
                        "%s: matrix descriptor is NULL", name);
    clxent_status st = check_buffer(ctx, fn, name, m->buffer);
    if (st) return st;
    int ok = allowed == CLX_DTYPE_FLOAT ? clx_is_float_dtype(m->dtype)
                                        : (m->dtype == CLXENT_F32);
    if (!ok)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, fn,
                        "%s: dtype %s (%d) is not allowed here (%s)", name,
                        clxent_dtype_name(m->dtype), (int)m->dtype,
                        allowed == CLX_DTYPE_FLOAT ? "f32, f16 or bf16"
                                                   : "f32");
    if (m->cols == 0)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: cols is 0 (at least one class is needed)", name);
    if (m->rows > CLX_MAX_DIM || m->cols > CLX_MAX_DIM)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: %zu x %zu exceeds the limit of %zu per dimension",
                        name, m->rows, m->cols, CLX_MAX_DIM);
    if (m->stride < m->cols)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: row stride %zu is smaller than cols %zu", name,
                        m->stride, m->cols);
    size_t span = 0;
    if (m->rows > 0) {
        if (!clx_mul_size(m->rows - 1, m->stride, &span) ||
            !clx_add_size(span, m->cols, &span))
            return clx_fail(ctx, CLXENT_STATUS_SIZE_OVERFLOW, fn,
                            "%s: rows %zu x stride %zu overflows size_t",
                            name, m->rows, m->stride);
    }
    clx_extent e = {m->buffer, 0, 0, name};
    st = check_extent(ctx, fn, name, m->buffer, m->offset, span, m->dtype,
                      &e.begin, &e.end);
    if (st) return st;
    if (extent) *extent = e;
    return CLXENT_STATUS_OK;
}

clxent_status clx_check_vector(clxent_context *ctx, const char *fn,
                               const char *name, const clxent_vector *v,
                               size_t length, clx_dtype_class allowed,
                               clx_extent *extent) {
    if (!v)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn,
                        "%s: vector descriptor is NULL", name);
    clxent_status st = check_buffer(ctx, fn, name, v->buffer);
    if (st) return st;
    int ok = allowed == CLX_DTYPE_INDEX
                 ? (v->dtype == CLXENT_I32 || v->dtype == CLXENT_I64)
                 : v->dtype == CLXENT_F32;
    if (!ok)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, fn,
                        "%s: dtype %s (%d) is not allowed here (%s)", name,
                        clxent_dtype_name(v->dtype), (int)v->dtype,
                        allowed == CLX_DTYPE_INDEX ? "i32 or i64" : "f32");
    if (v->length != length)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: length %zu, expected %zu", name, v->length,
                        length);
    clx_extent e = {v->buffer, 0, 0, name};
    st = check_extent(ctx, fn, name, v->buffer, v->offset, v->length,
                      v->dtype, &e.begin, &e.end);
    if (st) return st;
    if (extent) *extent = e;
    return CLXENT_STATUS_OK;
}

clxent_status clx_check_same_shape(clxent_context *ctx, const char *fn,
                                   const char *name, const clxent_matrix *m,
                                   const clxent_matrix *like,
                                   const char *like_name) {
    if (m->rows != like->rows || m->cols != like->cols)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: shape %zu x %zu differs from %s %zu x %zu", name,
                        m->rows, m->cols, like_name, like->rows, like->cols);
    return CLXENT_STATUS_OK;
}

/* ---- tensors ---- */

static int dtype_allowed(clxent_dtype d, clx_dtype_class allowed) {
    return allowed == CLX_DTYPE_FLOAT   ? clx_is_float_dtype(d)
           : allowed == CLX_DTYPE_INDEX ? (d == CLXENT_I32 || d == CLXENT_I64)
                                        : d == CLXENT_F32;
}

static const char *allowed_names(clx_dtype_class allowed) {
    return allowed == CLX_DTYPE_FLOAT   ? "f32, f16 or bf16"
           : allowed == CLX_DTYPE_INDEX ? "i32 or i64"
                                        : "f32";
}

/* Whether no two elements of t share an address: along the dimensions of
 * more than one element, sorted by stride, each stride passes the span of
 * the ones below it. */
static int distinct_elements(const clxent_tensor *t) {
    size_t n[3] = {t->outer, t->classes, t->inner};
    size_t s[3] = {t->outer_stride, t->class_stride, t->inner_stride};
    for (int a = 0; a < 3; ++a) /* sort by stride: three elements */
        for (int b = a + 1; b < 3; ++b)
            if (s[b] < s[a]) {
                size_t tn = n[a], ts = s[a];
                n[a] = n[b];
                s[a] = s[b];
                n[b] = tn;
                s[b] = ts;
            }
    size_t span = 0; /* the highest offset of the dimensions so far */
    for (int k = 0; k < 3; ++k) {
        if (n[k] <= 1) continue;
        if (s[k] <= span) return 0;
        span += (n[k] - 1) * s[k]; /* no overflow: checked before */
    }
    return 1;
}

clxent_status clx_check_tensor(clxent_context *ctx, const char *fn,
                               const char *name, const clxent_tensor *t,
                               clx_dtype_class allowed, int output,
                               clx_extent *extent) {
    if (!t)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn,
                        "%s: tensor descriptor is NULL", name);
    clxent_status st = check_buffer(ctx, fn, name, t->buffer);
    if (st) return st;
    if (!dtype_allowed(t->dtype, allowed))
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, fn,
                        "%s: dtype %s (%d) is not allowed here (%s)", name,
                        clxent_dtype_name(t->dtype), (int)t->dtype,
                        allowed_names(allowed));
    if (t->classes == 0)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: classes is 0 (at least one is needed)", name);
    size_t rows;
    if (t->outer > CLX_MAX_DIM || t->classes > CLX_MAX_DIM ||
        t->inner > CLX_MAX_DIM || !clx_mul_size(t->outer, t->inner, &rows) ||
        rows > CLX_MAX_DIM)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: %zu x %zu x %zu exceeds the limit of %zu rows "
                        "(outer x inner) and %zu classes",
                        name, t->outer, t->classes, t->inner, CLX_MAX_DIM,
                        CLX_MAX_DIM);
    if (t->inner_rank > CLXENT_MAX_INNER_DIMS)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: inner_rank %u is more than %d", name,
                        t->inner_rank, CLXENT_MAX_INNER_DIMS);
    if (t->inner_rank) {
        size_t p = 1;
        for (unsigned k = 0; k < t->inner_rank; ++k)
            if (!clx_mul_size(p, t->inner_dims[k], &p)) p = 0;
        if (p != t->inner)
            return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                            "%s: inner_dims multiply to %zu, not inner %zu",
                            name, p, t->inner);
    }
    /* the highest element: offset + sum (n - 1) * stride; count, the
     * elements up to it, span + 1 (which overflows when span is SIZE_MAX:
     * a wrapped count of 0 would fit any buffer) */
    size_t span = 0, part, count = 0;
    size_t n[3] = {t->outer, t->classes, t->inner};
    size_t s[3] = {t->outer_stride, t->class_stride, t->inner_stride};
    int empty = t->outer == 0 || t->inner == 0, over = 0;
    for (int k = 0; k < 3 && !empty; ++k)
        if (!clx_mul_size(n[k] - 1, s[k], &part) ||
            !clx_add_size(span, part, &span))
            over = 1;
    if (!empty && (over || !clx_add_size(span, 1, &count)))
        return clx_fail(ctx, CLXENT_STATUS_SIZE_OVERFLOW, fn,
                        "%s: the strides (%zu, %zu, %zu) over %zu x %zu x "
                        "%zu overflow size_t",
                        name, t->outer_stride, t->class_stride,
                        t->inner_stride, t->outer, t->classes, t->inner);
    if (output && !empty && !distinct_elements(t))
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: strides (%zu, %zu, %zu) over %zu x %zu x %zu "
                        "give two elements one address (an output must not "
                        "overlap itself)",
                        name, t->outer_stride, t->class_stride,
                        t->inner_stride, t->outer, t->classes, t->inner);
    clx_extent e = {t->buffer, 0, 0, name};
    st = check_extent(ctx, fn, name, t->buffer, t->offset, count, t->dtype,
                      &e.begin, &e.end);
    if (st) return st;
    if (extent) *extent = e;
    return CLXENT_STATUS_OK;
}

clxent_status clx_check_rows(clxent_context *ctx, const char *fn,
                             const char *name, const clxent_tensor *t,
                             size_t outer, size_t inner,
                             clx_dtype_class allowed, int output,
                             clx_extent *extent) {
    clxent_status st =
        clx_check_tensor(ctx, fn, name, t, allowed, output, extent);
    if (st) return st;
    if (t->classes != 1 || t->outer != outer || t->inner != inner)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: %zu x %zu x %zu, expected a row array %zu x 1 "
                        "x %zu",
                        name, t->outer, t->classes, t->inner, outer, inner);
    return CLXENT_STATUS_OK;
}

clxent_status clx_check_same_tensor_shape(clxent_context *ctx,
                                          const char *fn, const char *name,
                                          const clxent_tensor *t,
                                          const clxent_tensor *like,
                                          const char *like_name) {
    if (t->outer != like->outer || t->classes != like->classes ||
        t->inner != like->inner)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: shape %zu x %zu x %zu differs from %s %zu x "
                        "%zu x %zu",
                        name, t->outer, t->classes, t->inner, like_name,
                        like->outer, like->classes, like->inner);
    return CLXENT_STATUS_OK;
}

clxent_status clx_check_all_options(clxent_context *ctx, const char *fn,
                                    const clxent_options *in,
                                    clx_options *out) {
    clxent_options d;
    clxent_options_init(&d);
    if (in) {
        if (in->size < offsetof(clxent_options, loss) +
                           sizeof(clxent_loss_options))
            return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                            "options->size: %zu is too small (start from "
                            "CLXENT_OPTIONS_INIT or clxent_options_init)",
                            in->size);
        /* the fields the caller's header had; later ones keep defaults */
        memcpy(&d, in, in->size < sizeof d ? in->size : sizeof d);
        d.size = sizeof d;
    }
    clxent_status st = clx_check_options(ctx, fn, &d.loss, &out->loss);
    if (st) return st;
    if (!isfinite(d.softcap) || d.softcap < 0.0f)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->softcap: %g is not a finite value >= 0 "
                        "(0: off)",
                        (double)d.softcap);
    if (!isfinite(d.logit_scale) || d.logit_scale <= 0.0f)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->logit_scale: %g is not a finite value > 0",
                        (double)d.logit_scale);
    out->softcap = d.softcap;
    out->logit_scale = d.logit_scale;
    out->validate_only = d.validate_only != 0;
    return CLXENT_STATUS_OK;
}

static int finite_in(float v, float lo, float hi) {
    return isfinite(v) && v >= lo && v <= hi;
}

clxent_status clx_check_options(clxent_context *ctx, const char *fn,
                                const clxent_loss_options *in,
                                clxent_loss_options *out) {
    if (!in) {
        clxent_loss_options_init(out);
        return CLXENT_STATUS_OK;
    }
    if (in->reduction != CLXENT_REDUCTION_NONE &&
        in->reduction != CLXENT_REDUCTION_SUM &&
        in->reduction != CLXENT_REDUCTION_MEAN)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->reduction: %d is not none (0), sum (1) or "
                        "mean (2)",
                        (int)in->reduction);
    if (!finite_in(in->label_smoothing, 0.0f, 1.0f))
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->label_smoothing: %g is not in [0, 1]",
                        (double)in->label_smoothing);
    if (!isfinite(in->z_loss) || in->z_loss < 0.0f)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->z_loss: %g is not a finite value >= 0",
                        (double)in->z_loss);
    if (!isfinite(in->grad_scale))
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->grad_scale: %g is not finite",
                        (double)in->grad_scale);
    if (!isfinite(in->normalizer) || in->normalizer < 0.0f)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->normalizer: %g is not a finite value > 0 "
                        "(or 0 for unset)",
                        (double)in->normalizer);
    if (in->all_ignored_zero != 0 && in->all_ignored_zero != 1)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->all_ignored_zero: %d is not 0 or 1",
                        in->all_ignored_zero);
    if (in->in_place != 0 && in->in_place != 1)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->in_place: %d is not 0 or 1", in->in_place);
    if (in->target_check != CLXENT_CHECK_SYNC &&
        in->target_check != CLXENT_CHECK_DEFERRED)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->target_check: %d is not SYNC (0) or "
                        "DEFERRED (1)",
                        (int)in->target_check);
    *out = *in;
    return CLXENT_STATUS_OK;
}

clxent_status clx_check_events(clxent_context *ctx, const char *fn,
                               const clxent_events *ev) {
    if (!ev) return CLXENT_STATUS_OK;
    if (ev->num_wait > 0 && !ev->wait_list)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn,
                        "events->wait_list: NULL with num_wait %u",
                        (unsigned)ev->num_wait);
    if (ev->num_wait == 0 && ev->wait_list)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "events->wait_list: given with num_wait 0");
    if (ev->num_wait == 0) return CLXENT_STATUS_OK;
    if (!ctx->cl_context)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "events->wait_list: the host backend has no events");
    for (cl_uint i = 0; i < ev->num_wait; ++i) {
        cl_context owner = NULL;
        if (!ev->wait_list[i])
            return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn,
                            "events->wait_list[%u] is NULL", (unsigned)i);
        cl_int err = CLX_CL(clGetEventInfo(ev->wait_list[i], CL_EVENT_CONTEXT,
                                           sizeof owner, &owner, NULL));
        if (err != CL_SUCCESS)
            return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                            "events->wait_list[%u]: clGetEventInfo failed: "
                            "%s (%d)",
                            (unsigned)i, clx_cl_error_name(err), (int)err);
        if (owner != ctx->cl_context)
            return clx_fail(ctx, CLXENT_STATUS_WRONG_CONTEXT, fn,
                            "events->wait_list[%u] belongs to another "
                            "cl_context",
                            (unsigned)i);
    }
    return CLXENT_STATUS_OK;
}

static int overlaps(const clx_extent *a, const clx_extent *b) {
    return a->buffer && b->buffer && a->buffer == b->buffer &&
           a->begin < b->end && b->begin < a->end;
}

clxent_status clx_check_overlaps(clxent_context *ctx, const char *fn,
                                 const clx_extent *outputs, size_t n_out,
                                 const clx_extent *inputs, size_t n_in) {
    for (size_t i = 0; i < n_out; ++i) {
        for (size_t j = 0; j < n_in; ++j)
            if (overlaps(&outputs[i], &inputs[j]))
                return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                                "%s: overlaps input %s in the same buffer",
                                outputs[i].name, inputs[j].name);
        for (size_t j = i + 1; j < n_out; ++j)
            if (overlaps(&outputs[i], &outputs[j]))
                return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                                "%s: overlaps output %s in the same buffer",
                                outputs[i].name, outputs[j].name);
    }
    return CLXENT_STATUS_OK;
}
