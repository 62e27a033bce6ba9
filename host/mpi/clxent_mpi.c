/* clxent_mpi (clxent_mpi.h): the sharded loss over MPI ranks, on top of the
 * public API only (a layer above the library: it calls the sharded steps,
 * clxent.h "Sharded vocabulary", and moves their O(rows) results between
 * ranks). Every local step's status is agreed over both communicators
 * before the next exchange, so no rank waits in a collective that another
 * rank left; the callers' outputs are written only after every rank
 * validated all its arguments (options.validate_only). */
#include "agree.h"

#include <float.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F = CLXENT_PARTIAL_FLOATS };

/* ---- what the step spent on MPI (clxent_mpi_last_stats) ---- */

void clxent_mpi_last_stats(clxent_mpi_stats *out) {
    if (out) *out = clx_mpi_stats;
}

/* ---- the record reduction ---- */

static void combine_fn(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const float *a = in;
    float *b = inout;
    /* b = a (+) b, a from the lower ranks */
    (void)clxent_partial_combine_host(a, b, b, (size_t)*len);
}

static MPI_Op combine_op = MPI_OP_NULL;
static MPI_Datatype record_type = MPI_DATATYPE_NULL;
/* once, whichever thread asks first: two threads could otherwise both
 * create them, or one see a type not yet committed */
static pthread_once_t type_once = PTHREAD_ONCE_INIT,
                      op_once = PTHREAD_ONCE_INIT;

static void make_type(void) {
    MPI_Datatype t;
    MPI_Type_contiguous(F, MPI_FLOAT, &t);
    MPI_Type_commit(&t);
    record_type = t;
}

/* not commutative for MPI: it then combines in rank order, the same
 * order (and result) in every run with the same ranks */
static void make_op(void) { MPI_Op_create(combine_fn, 0, &combine_op); }

MPI_Datatype clxent_mpi_record_type(void) {
    pthread_once(&type_once, make_type);
    return record_type;
}

MPI_Op clxent_mpi_combine_op(void) {
    pthread_once(&op_once, make_op);
    return combine_op;
}

/* ---- the step ---- */

typedef struct step {
    clxent_context *ctx;
    MPI_Comm vocab, batch;
    size_t rows;
    clxent_buffer *rec;
    clxent_tensor records;
    float *host; /* rows x F */
} step;

/* The caller's options, size-aware, with the checks this call adds. */
static clxent_status take_options(clxent_context *ctx,
                                  const clxent_options *in,
                                  clxent_options *out) {
    clxent_options_init(out);
    if (!in) return CLXENT_STATUS_OK;
    size_t need = offsetof(clxent_options, loss) + sizeof(clxent_loss_options);
    if (in->size < need)
        return clxent_context_set_error(ctx, CLXENT_STATUS_INVALID_ARGUMENT,
                                        FN, "options->size is too small "
                                        "(start from CLXENT_OPTIONS_INIT)");
    memcpy(out, in, in->size < sizeof *out ? in->size : sizeof *out);
    out->size = sizeof *out;
    if (out->validate_only)
        return clxent_context_set_error(ctx, CLXENT_STATUS_INVALID_ARGUMENT,
                                        FN, "options->validate_only: not "
                                        "for this call (it validates every "
                                        "rank itself)");
    /* every status is agreed before the call returns: a check deferred to
     * clxent_finish would reach only the rank that found the bad row, and
     * the others would keep its NaN */
    out->loss.target_check = CLXENT_CHECK_SYNC;
    return CLXENT_STATUS_OK;
}

/* Records scratch for this rank's rows: a device buffer and its host copy. */
static clxent_status records_make(step *s, const clxent_tensor *logits) {
    s->rows = logits ? logits->outer * logits->inner : 0;
    if (s->rows > INT_MAX) /* MPI counts records in an int */
        return clxent_context_set_error(s->ctx, CLXENT_STATUS_INVALID_SHAPE,
                                        FN, "more than INT_MAX rows on one "
                                        "rank with the vocabulary split");
    size_t outer = logits ? logits->outer : 0, inner = logits ? logits->inner : 1;
    size_t bytes = (s->rows ? s->rows : 1) * F * sizeof(float);
    s->host = malloc(bytes);
    if (!s->host)
        return clxent_context_set_error(s->ctx, CLXENT_STATUS_OUT_OF_MEMORY,
                                        FN, "host records");
    clxent_status st = clxent_buffer_create(s->ctx, bytes, &s->rec);
    /* row r = o * inner + i at r * F: the host side reduces rows of F */
    s->records = clxent_tensor_of(s->rec, outer, F, inner, CLXENT_F32);
    s->records.outer_stride = inner * F;
    s->records.class_stride = 1;
    s->records.inner_stride = F;
    return st;
}

/* The rows' records combined over vocab, on the host and back (agreed). */
static clxent_status records_combine(step *s) {
    size_t bytes = s->rows * F * sizeof(float);
    clxent_status st = clxent_buffer_read(s->ctx, s->rec, 0, bytes, s->host);
    st = clx_mpi_agree(s->ctx, s->vocab, s->batch, st);
    if (st) return st;
    int vn;
    MPI_Comm_size(s->vocab, &vn);
    if (vn > 1 && s->rows > 0)
        COLLECTIVE(bytes, MPI_Allreduce(MPI_IN_PLACE, s->host, (int)s->rows,
                                        clxent_mpi_record_type(),
                                        clxent_mpi_combine_op(), s->vocab));
    st = clxent_buffer_write(s->ctx, s->rec, 0, bytes, s->host);
    return clx_mpi_agree(s->ctx, s->vocab, s->batch, st);
}

/* W over the batch: the valid rows' w_y (class indices: a valid row is
 * owned by exactly one shard, ignored rows by none) or the row count. */
/* What a rank's rows give the mean: W, the valid rows, and a hash of the
 * class indices (rows_scan). */
typedef struct rows_sum {
    double w, valid;
    long long hash;
} rows_sum;

static rows_sum records_w(const step *s, int indices) {
    rows_sum q = {0.0, 0.0, 0};
    for (size_t r = 0; r < s->rows; ++r) {
        const float *p = s->host + r * F;
        int valid = !indices || p[CLXENT_PARTIAL_OWN] > 0.0f;
        q.valid += valid;
        q.w += !indices ? 1.0 : valid ? (double)p[CLXENT_PARTIAL_WY] : 0.0;
    }
    return q;
}

/* The mean's global W, into o's normalizer, agreed. With valid rows W
 * must be positive: the normalizer cannot carry another value, and each
 * rank dividing by its own W (as before) was a wrong mean without a
 * word; without valid rows the mean is NaN (or 0), as unsharded. */
static clxent_status global_w(step *s, rows_sum local, clxent_options *o) {
    clxent_status st = CLXENT_STATUS_OK;
    double w = clx_mpi_sum_ranks(s->batch, local.w, &st);
    double valid = st ? 0.0 : clx_mpi_sum_ranks(s->batch, local.valid, &st);
    if (st)
        clxent_context_set_error(s->ctx, st, FN, "the rank sums' buffer");
    else if (valid > 0.0 && !(w > 0.0 && w <= FLT_MAX))
        st = clxent_context_set_error(
            s->ctx, CLXENT_STATUS_INVALID_ARGUMENT, FN,
            "the mean's W, the valid rows' weights summed over the ranks, "
            "is not a positive float: give options->normalizer");
    else if (valid > 0.0)
        o->loss.normalizer = (float)w;
    return clx_mpi_agree(s->ctx, s->vocab, s->batch, st);
}

/* A reduced loss (1 x 1) summed over the batch ranks, in place. */
static clxent_status sum_scalar(step *s, const clxent_tensor *t) {
    if (!t || !t->buffer) return CLXENT_STATUS_OK;
    float v = 0.0f;
    size_t at = t->offset * sizeof(float);
    clxent_status st = clxent_buffer_read(s->ctx, t->buffer, at, sizeof v, &v);
    st = clx_mpi_agree(s->ctx, s->vocab, s->batch, st);
    if (st) return st;
    v = (float)clx_mpi_sum_ranks(s->batch, (double)v, &st);
    if (!st) st = clxent_buffer_write(s->ctx, t->buffer, at, sizeof v, &v);
    return clx_mpi_agree(s->ctx, s->vocab, s->batch, st);
}

/* ---- the rows split only: the one-device fused call ---- */

/* clxent_cross_entropy_nd, or its forward alone without a gradient. */
static clxent_status one_device(clxent_context *ctx,
                                const clxent_tensor *logits,
                                const clxent_tensor_targets *targets,
                                const clxent_vector *weights,
                                const clxent_options *o,
                                const clxent_tensor *grad_rows,
                                const clxent_tensor *loss,
                                const clxent_tensor *lse,
                                const clxent_tensor *z_loss_out,
                                const clxent_tensor *grad) {
    if (grad && grad->buffer)
        return clxent_cross_entropy_nd(ctx, logits, targets, weights, o,
                                       grad_rows, loss, lse, z_loss_out, grad,
                                       NULL);
    return clxent_cross_entropy_forward_nd(ctx, logits, targets, weights, o,
                                           loss, lse, z_loss_out, NULL);
}

/* Element i of an index tensor's host copy. */
static long long index_at(const void *base, clxent_dtype dt, size_t i) {
    return dt == CLXENT_I64 ? (long long)((const int64_t *)base)[i]
                            : (long long)((const int32_t *)base)[i];
}

/* This rank's rows, from host copies of the class indices and weights
 * (O(rows + C) bytes, read after the descriptors were validated, the
 * logits never): W (the valid rows' w_y, or the rows for probabilities),
 * the valid rows, a hash of the indices in row order (the vocabulary
 * ranks must hold the same; 0 without indices) and, with `range`, their
 * check against [0, C). */
static clxent_status rows_scan(clxent_context *ctx,
                               const clxent_tensor *logits,
                               const clxent_tensor_targets *tg,
                               const clxent_vector *w,
                               const clxent_options *o, int range,
                               rows_sum *out) {
    size_t R = logits->outer * logits->inner, C = logits->classes;
    *out = (rows_sum){(double)R, (double)R, 0};
    const clxent_tensor *y = &tg->indices;
    if (!y->buffer || R == 0) return CLXENT_STATUS_OK;
    size_t es = clxent_dtype_size(y->dtype);
    size_t last = y->offset + (y->outer - 1) * y->outer_stride +
                  (y->inner - 1) * y->inner_stride;
    size_t first = y->offset, n = last - first + 1;
    char *yh = malloc(n * es);
    float *wh = w && w->buffer ? malloc(C * sizeof *wh) : NULL;
    clxent_status st = yh && (wh || !(w && w->buffer))
                           ? CLXENT_STATUS_OK
                           : CLXENT_STATUS_OUT_OF_MEMORY;
    if (!st) st = clxent_buffer_read(ctx, y->buffer, first * es, n * es, yh);
    if (!st && wh)
        st = clxent_buffer_read(ctx, w->buffer, w->offset * sizeof *wh,
                                C * sizeof *wh, wh);
    double total = 0.0, valid = 0.0;
    uint64_t hash = 14695981039346656037ull; /* FNV-1a over the values */
    for (size_t r = 0; !st && r < R; ++r) {
        size_t at = (r / y->inner) * y->outer_stride +
                    (r % y->inner) * y->inner_stride;
        long long v = index_at(yh, y->dtype, at);
        hash = (hash ^ (uint64_t)v) * 1099511628211ull;
        if (v == o->loss.ignore_index) continue;
        if (range && (v < 0 || (unsigned long long)v >= C)) {
            char text[200];
            snprintf(text, sizeof text, "targets[%zu] = %lld is outside [0, "
                     "%zu) and is not ignore_index (%lld)", r, v, C,
                     (long long)o->loss.ignore_index);
            st = clxent_context_set_error(
                ctx, CLXENT_STATUS_TARGET_OUT_OF_RANGE, FN, text);
            break; /* v indexes nothing */
        }
        valid += 1.0;
        total += wh ? (double)wh[v] : 1.0;
    }
    free(yh);
    free(wh);
    if (!st) *out = (rows_sum){total, valid, (long long)hash};
    return st;
}

clxent_status clxent_mpi_cross_entropy_nd(
    clxent_context *ctx, MPI_Comm vocab, MPI_Comm batch,
    const clxent_tensor *logits, const clxent_tensor_targets *targets,
    const clxent_vector *weights, const clxent_shard *shard,
    const clxent_options *options, const clxent_tensor *grad_rows,
    const clxent_tensor *loss, const clxent_tensor *lse,
    const clxent_tensor *z_loss_out, const clxent_tensor *grad) {
    step s = {ctx, vocab, batch, 0, NULL, {0}, NULL};
    memset(&clx_mpi_stats, 0, sizeof clx_mpi_stats);
    clxent_status bad = clx_mpi_usable(ctx, vocab, batch);
    if (bad) return bad;
    clxent_options o, dry;
    clxent_options_init(&o);
    clxent_shard all = {0, logits ? (int64_t)logits->classes : 0};
    if (!shard) shard = &all;
    int vn;
    MPI_Comm_size(vocab, &vn);
    /* the rows split only: the one-device fused call, over the global W */
    int fused = vn == 1;
    rows_sum local = {0.0, 0.0, 0};
    clxent_status st = ctx ? take_options(ctx, options, &o)
                           : CLXENT_STATUS_NULL_POINTER;
    dry = o;
    dry.validate_only = 1;
    if (!st && fused && shard->class_begin != 0)
        st = clxent_context_set_error(ctx, CLXENT_STATUS_INVALID_ARGUMENT, FN,
                                      "shard->class_begin: not 0 with one "
                                      "rank in the vocabulary communicator");
    if (!st && fused) {
        s.rows = logits ? logits->outer * logits->inner : 0;
        st = one_device(ctx, logits, targets, weights, &dry, grad_rows, loss,
                        lse, z_loss_out, grad);
        if (!st) st = rows_scan(ctx, logits, targets, weights, &o, 1, &local);
    } else if (!st) {
        st = records_make(&s, logits);
        /* step 1, which also checks the class indices against
         * classes_total; then every output descriptor, writing nothing */
        if (!st)
            st = clxent_cross_entropy_partial_nd(ctx, logits, targets,
                                                 weights, shard, &o,
                                                 &s.records, NULL);
        if (!st)
            st = clxent_cross_entropy_finalize_nd(ctx, &s.records, targets,
                                                  shard, &dry, loss, lse,
                                                  z_loss_out, NULL);
        if (!st && grad && grad->buffer)
            st = clxent_cross_entropy_backward_shard_nd(
                ctx, logits, targets, weights, shard, &dry, &s.records,
                grad_rows, grad, NULL);
        /* the class indices' hash: the vocabulary ranks must agree */
        if (!st) st = rows_scan(ctx, logits, targets, NULL, &o, 0, &local);
    }
    /* from here on every status is agreed: all ranks take the same path */
    st = clx_mpi_consistent(ctx, vocab, batch, st, s.rows,
                            logits ? logits->classes : 0, shard, &o,
                            targets && targets->probs.buffer, local.hash,
                            z_loss_out && z_loss_out->buffer,
                            grad && grad->buffer);
    st = clx_mpi_agree(ctx, vocab, batch, st);
    if (!st && !fused) st = records_combine(&s);
    int mean = o.loss.reduction == CLXENT_REDUCTION_MEAN;
    if (!st && mean && !(o.loss.normalizer > 0.0f))
        /* the global W before anything is written (data parallel) */
        st = global_w(&s,
                      fused ? local
                            : records_w(&s, targets->indices.buffer != NULL),
                      &o);
    if (!st && fused)
        st = clx_mpi_agree(ctx, vocab, batch,
                           one_device(ctx, logits, targets, weights, &o,
                                      grad_rows, loss, lse, z_loss_out, grad));
    else if (!st)
        st = clx_mpi_agree(ctx, vocab, batch,
                           clxent_cross_entropy_finalize_nd(
                               ctx, &s.records, targets, shard, &o, loss, lse,
                               z_loss_out, NULL));
    if (!st && o.loss.reduction != CLXENT_REDUCTION_NONE) {
        st = sum_scalar(&s, loss);
        if (!st) st = sum_scalar(&s, z_loss_out);
    }
    if (!st && !fused && grad && grad->buffer)
        st = clx_mpi_agree(ctx, vocab, batch,
                           clxent_cross_entropy_backward_shard_nd(
                               ctx, logits, targets, weights, shard, &o,
                               &s.records, grad_rows, grad, NULL));
    clxent_buffer_release(s.rec);
    free(s.host);
    return st;
}
