/* clxent_mpi (clxent_mpi.h): the sharded loss over MPI ranks, on top of the
 * public API only (a layer above the library: it calls the sharded steps,
 * clxent.h "Sharded vocabulary", and moves their O(rows) results between
 * ranks). Every local step's status is agreed over both communicators
 * before the next exchange, so no rank waits in a collective that another
 * rank left; the callers' outputs are written only after every rank
 * validated all its arguments (options.validate_only). */
#include <clxent/clxent_mpi.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FN "clxent_mpi_cross_entropy_nd"
enum { F = CLXENT_PARTIAL_FLOATS };

/* ---- what the step spent on MPI (clxent_mpi_last_stats) ---- */

static _Thread_local clxent_mpi_stats stats;

void clxent_mpi_last_stats(clxent_mpi_stats *out) {
    if (out) *out = stats;
}

/* Runs one collective, counting its time and the bytes this rank gave. */
#define COLLECTIVE(bytes, call)                                                \
    do {                                                                       \
        double t0_ = MPI_Wtime();                                              \
        call;                                                                  \
        stats.mpi_seconds += MPI_Wtime() - t0_;                                \
        stats.exchanged_bytes += (size_t)(bytes);                              \
        ++stats.collectives;                                                   \
    } while (0)

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

MPI_Datatype clxent_mpi_record_type(void) {
    if (record_type == MPI_DATATYPE_NULL) {
        MPI_Type_contiguous(F, MPI_FLOAT, &record_type);
        MPI_Type_commit(&record_type);
    }
    return record_type;
}

MPI_Op clxent_mpi_combine_op(void) {
    /* not commutative for MPI: it then combines in rank order, the same
     * order (and result) in every run with the same ranks */
    if (combine_op == MPI_OP_NULL) MPI_Op_create(combine_fn, 0, &combine_op);
    return combine_op;
}

/* ---- agreeing on a status ---- */

typedef struct verdict {
    int status;
    int world_rank; /* the rank that failed first */
    char message[1000];
} verdict;

/* The lowest failing rank of comm, its status and message, on every rank
 * of comm; the others record "rank k failed: ..." on ctx. */
static clxent_status agree_on(clxent_context *ctx, MPI_Comm comm,
                              clxent_status st, verdict *v) {
    int me, first;
    MPI_Comm_rank(comm, &me);
    int key = st != CLXENT_STATUS_OK ? me : INT_MAX;
    COLLECTIVE(sizeof key,
               MPI_Allreduce(&key, &first, 1, MPI_INT, MPI_MIN, comm));
    if (first == INT_MAX) return CLXENT_STATUS_OK;
    COLLECTIVE(me == first ? sizeof *v : 0,
               MPI_Bcast(v, (int)sizeof *v, MPI_BYTE, first, comm));
    if (me != first) {
        char text[sizeof v->message + 64];
        snprintf(text, sizeof text, "rank %d failed: %s", v->world_rank,
                 v->message);
        clxent_context_set_error(ctx, (clxent_status)v->status, FN, text);
    }
    return (clxent_status)v->status;
}

/* st agreed over vocab, then over batch: after the first every rank of a
 * vocab group holds its group's verdict, after the second every rank the
 * grid's. */
static clxent_status agree(clxent_context *ctx, MPI_Comm vocab,
                           MPI_Comm batch, clxent_status st) {
    verdict v;
    memset(&v, 0, sizeof v);
    if (st != CLXENT_STATUS_OK) {
        v.status = (int)st;
        MPI_Comm_rank(MPI_COMM_WORLD, &v.world_rank);
        snprintf(v.message, sizeof v.message, "%s",
                 clxent_context_message(ctx));
    }
    st = agree_on(ctx, vocab, st, &v);
    return agree_on(ctx, batch, st, &v);
}

/* The sum of one double per rank of comm, in rank order on every rank. */
static double sum_ranks(MPI_Comm comm, double value, clxent_status *st) {
    int n;
    MPI_Comm_size(comm, &n);
    double *all = malloc((size_t)n * sizeof *all), total = 0.0;
    int ok = all != NULL, all_ok;
    COLLECTIVE(sizeof ok, MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm));
    if (!all_ok) {
        free(all);
        *st = CLXENT_STATUS_OUT_OF_MEMORY;
        return 0.0;
    }
    COLLECTIVE(sizeof value,
               MPI_Allgather(&value, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, comm));
    for (int k = 0; k < n; ++k) total += all[k];
    free(all);
    return total;
}

/* ---- the ranks' arguments agree ---- */

enum { NSIG = 12 };

static long long bits_of(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (long long)u;
}

/* Which of the values every rank must share differ across comm (from
 * index `first`): -1 when none. A rank whose own arguments failed (st)
 * takes no part: its values may be anything. */
static int differs(MPI_Comm comm, clxent_status st, const long long *v,
                   int first) {
    long long mine[2 * NSIG], most[2 * NSIG];
    for (int k = 0; k < NSIG; ++k) {
        mine[2 * k] = st ? LLONG_MIN : v[k];
        mine[2 * k + 1] = st ? LLONG_MIN : -v[k];
    }
    COLLECTIVE(sizeof mine, MPI_Allreduce(mine, most, 2 * NSIG, MPI_LONG_LONG,
                                          MPI_MAX, comm));
    for (int k = first; k < NSIG; ++k)
        if (most[2 * k] != LLONG_MIN && most[2 * k] != -most[2 * k + 1])
            return k;
    return -1;
}

static int by_begin(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Whether the vocabulary ranks' classes tile [0, classes_total): sorted
 * by class_begin, each starts where the one before ends. Counting them
 * would miss [0, 5) and [3, 8) of 10, a class twice and two none, which
 * the records' combination turns into a wrong loss without a word. A
 * rank whose own arguments failed (st) takes no part. */
static clxent_status tiled(clxent_context *ctx, MPI_Comm vocab,
                           clxent_status st, const clxent_shard *sh,
                           size_t classes) {
    int n;
    MPI_Comm_size(vocab, &n);
    long long(*all)[3] = malloc((size_t)n * sizeof *all);
    int ok = all != NULL, all_ok;
    COLLECTIVE(sizeof ok, MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN,
                                        vocab));
    if (!all_ok) {
        free(all);
        return st ? st
                  : clxent_context_set_error(ctx, CLXENT_STATUS_OUT_OF_MEMORY,
                                             FN, "the shards' table");
    }
    long long b = sh ? (long long)sh->class_begin : 0, mine[3] = {-1, -1, 0};
    int me;
    MPI_Comm_rank(vocab, &me);
    if (!st) {
        mine[0] = b;
        mine[1] = b + (long long)classes;
        mine[2] = me;
    }
    COLLECTIVE(sizeof mine, MPI_Allgather(mine, 3, MPI_LONG_LONG, all, 3,
                                          MPI_LONG_LONG, vocab));
    qsort(all, (size_t)n, sizeof *all, by_begin);
    long long end = 0, total = sh ? (long long)sh->classes_total : 0;
    char text[200] = "";
    for (int k = 0; !st && all[0][0] >= 0 && k < n && !text[0]; ++k) {
        if (all[k][0] > end)
            snprintf(text, sizeof text, "no vocabulary rank holds classes "
                     "[%lld, %lld)", end, all[k][0]);
        else if (all[k][0] < end)
            snprintf(text, sizeof text, "vocabulary rank %lld holds classes "
                     "[%lld, %lld), which another rank holds too",
                     all[k][2], all[k][0], all[k][1] < end ? all[k][1] : end);
        end = all[k][1];
    }
    if (!st && all[0][0] >= 0 && !text[0] && end != total)
        snprintf(text, sizeof text, "no vocabulary rank holds classes "
                 "[%lld, %lld = classes_total)", end, total);
    free(all);
    if (st || !text[0]) return st;
    return clxent_context_set_error(ctx, CLXENT_STATUS_INVALID_ARGUMENT, FN,
                                    text);
}

/* The rows over vocab, and classes_total, the reduction, the kind of
 * targets and every option over both communicators: a mismatch would send
 * the ranks down different paths (an abort, or a hang). */
static clxent_status consistent(clxent_context *ctx, MPI_Comm vocab,
                                MPI_Comm batch, clxent_status st,
                                size_t rows, size_t classes,
                                const clxent_shard *sh,
                                const clxent_options *o, int probs) {
    static const char *names[NSIG] = {
        "the rows (the vocabulary ranks must hold the same rows)",
        "classes_total", "the size of their vocabulary communicators",
        "the reduction", "the kind of targets", "label_smoothing", "z_loss",
        "normalizer", "grad_scale", "ignore_index", "softcap", "logit_scale"};
    int vn;
    MPI_Comm_size(vocab, &vn);
    long long v[NSIG] = {(long long)rows, sh ? (long long)sh->classes_total : 0,
                         vn, (long long)o->loss.reduction, probs,
                         bits_of(o->loss.label_smoothing), bits_of(o->loss.z_loss),
                         bits_of(o->loss.normalizer), bits_of(o->loss.grad_scale),
                         (long long)o->loss.ignore_index, bits_of(o->softcap),
                         bits_of(o->logit_scale)};
    int k = differs(vocab, st, v, 0), kb = differs(batch, st, v, 1);
    if (k < 0) k = kb;
    /* every rank of vocab runs the collective, whatever its batch said */
    clxent_status t = tiled(ctx, vocab, st, sh, classes);
    if (st || k < 0) return st ? st : t;
    char text[200];
    snprintf(text, sizeof text, "the ranks disagree on %s", names[k]);
    return clxent_context_set_error(ctx, CLXENT_STATUS_INVALID_ARGUMENT, FN,
                                    text);
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
    return CLXENT_STATUS_OK;
}

/* Records scratch for this rank's rows: a device buffer and its host copy. */
static clxent_status records_make(step *s, const clxent_tensor *logits) {
    s->rows = logits ? logits->outer * logits->inner : 0;
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
    st = agree(s->ctx, s->vocab, s->batch, st);
    if (st) return st;
    int vn;
    MPI_Comm_size(s->vocab, &vn);
    if (vn > 1 && s->rows > 0)
        COLLECTIVE(bytes, MPI_Allreduce(MPI_IN_PLACE, s->host, (int)s->rows,
                                        clxent_mpi_record_type(),
                                        clxent_mpi_combine_op(), s->vocab));
    st = clxent_buffer_write(s->ctx, s->rec, 0, bytes, s->host);
    return agree(s->ctx, s->vocab, s->batch, st);
}

/* W over the batch: the valid rows' w_y (class indices: a valid row is
 * owned by exactly one shard, ignored rows by none) or the row count. */
static double global_w(step *s, int indices, clxent_status *st) {
    double w = 0.0;
    for (size_t r = 0; r < s->rows; ++r) {
        const float *q = s->host + r * F;
        w += !indices ? 1.0
             : q[CLXENT_PARTIAL_OWN] > 0.0f ? (double)q[CLXENT_PARTIAL_WY]
                                            : 0.0;
    }
    return sum_ranks(s->batch, w, st);
}

/* A reduced loss (1 x 1) summed over the batch ranks, in place. */
static clxent_status sum_scalar(step *s, const clxent_tensor *t) {
    if (!t || !t->buffer) return CLXENT_STATUS_OK;
    float v = 0.0f;
    size_t at = t->offset * sizeof(float);
    clxent_status st = clxent_buffer_read(s->ctx, t->buffer, at, sizeof v, &v);
    st = agree(s->ctx, s->vocab, s->batch, st);
    if (st) return st;
    v = (float)sum_ranks(s->batch, (double)v, &st);
    if (!st) st = clxent_buffer_write(s->ctx, t->buffer, at, sizeof v, &v);
    return agree(s->ctx, s->vocab, s->batch, st);
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

/* This rank's W (the valid rows' w_y, or the rows) and the range check of
 * its class indices, on host copies of the targets and weights (O(rows +
 * C) bytes, read after the descriptors were validated): what the fused
 * call needs before it may write, without reading the logits. */
static clxent_status rows_w(clxent_context *ctx, const clxent_tensor *logits,
                            const clxent_tensor_targets *tg,
                            const clxent_vector *w, const clxent_options *o,
                            double *out) {
    size_t R = logits->outer * logits->inner, C = logits->classes;
    *out = (double)R;
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
    double total = 0.0;
    for (size_t r = 0; !st && r < R; ++r) {
        size_t at = (r / y->inner) * y->outer_stride +
                    (r % y->inner) * y->inner_stride;
        long long v = index_at(yh, y->dtype, at);
        if (v == o->loss.ignore_index) continue;
        if (v < 0 || (unsigned long long)v >= C) {
            char text[200];
            snprintf(text, sizeof text, "targets[%zu] = %lld is outside [0, "
                     "%zu) and is not ignore_index (%lld)", r, v, C,
                     (long long)o->loss.ignore_index);
            st = clxent_context_set_error(
                ctx, CLXENT_STATUS_TARGET_OUT_OF_RANGE, FN, text);
            break; /* v indexes nothing */
        }
        total += wh ? (double)wh[v] : 1.0;
    }
    free(yh);
    free(wh);
    if (!st) *out = total;
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
    memset(&stats, 0, sizeof stats);
    clxent_options o, dry;
    clxent_options_init(&o);
    clxent_shard all = {0, logits ? (int64_t)logits->classes : 0};
    if (!shard) shard = &all;
    int vn;
    MPI_Comm_size(vocab, &vn);
    /* the rows split only: the one-device fused call, over the global W */
    int fused = vn == 1;
    double w_rows = 0.0;
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
        if (!st) st = rows_w(ctx, logits, targets, weights, &o, &w_rows);
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
    }
    /* from here on every status is agreed: all ranks take the same path */
    st = consistent(ctx, vocab, batch, st, s.rows,
                    logits ? logits->classes : 0, shard, &o,
                    targets && targets->probs.buffer);
    st = agree(ctx, vocab, batch, st);
    if (!st && !fused) st = records_combine(&s);
    int mean = o.loss.reduction == CLXENT_REDUCTION_MEAN;
    if (!st && mean && !(o.loss.normalizer > 0.0f)) {
        /* the global W before anything is written (data parallel) */
        double w = fused ? sum_ranks(batch, w_rows, &st)
                         : global_w(&s, targets->indices.buffer != NULL, &st);
        if (st)
            clxent_context_set_error(ctx, st, FN, "the rank sums' buffer");
        else if (w > 0.0)
            o.loss.normalizer = (float)w;
    }
    if (!st && fused)
        st = agree(ctx, vocab, batch,
                   one_device(ctx, logits, targets, weights, &o, grad_rows,
                              loss, lse, z_loss_out, grad));
    else if (!st)
        st = agree(ctx, vocab, batch,
                   clxent_cross_entropy_finalize_nd(ctx, &s.records, targets,
                                                    shard, &o, loss, lse,
                                                    z_loss_out, NULL));
    if (!st && o.loss.reduction != CLXENT_REDUCTION_NONE) {
        st = sum_scalar(&s, loss);
        if (!st) st = sum_scalar(&s, z_loss_out);
    }
    if (!st && !fused && grad && grad->buffer)
        st = agree(ctx, vocab, batch,
                   clxent_cross_entropy_backward_shard_nd(
                       ctx, logits, targets, weights, shard, &o, &s.records,
                       grad_rows, grad, NULL));
    clxent_buffer_release(s.rec);
    free(s.host);
    return st;
}
