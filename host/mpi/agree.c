/* clxent_mpi's agreement (agree.h): statuses and the arguments every rank
 * must share, agreed before any exchange. */
#include "agree.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Thread_local clxent_mpi_stats clx_mpi_stats;

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
clxent_status clx_mpi_agree(clxent_context *ctx, MPI_Comm vocab,
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
double clx_mpi_sum_ranks(MPI_Comm comm, double value, clxent_status *st) {
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

/* The values the ranks must share: the first VOCAB_ONLY over the
 * vocabulary communicator only (its ranks hold the same rows), the rest
 * over both. */
enum { NSIG = 16, VOCAB_ONLY = 2 };

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
    /* max(v) and max(~v) = ~min(v): equal everywhere when max == min (~,
     * not -, which overflows at LLONG_MIN); the last pair counts the
     * ranks that take part */
    long long mine[2 * NSIG + 1], most[2 * NSIG + 1];
    for (int k = 0; k < NSIG; ++k) {
        mine[2 * k] = st ? LLONG_MIN : v[k];
        mine[2 * k + 1] = st ? LLONG_MIN : ~v[k];
    }
    mine[2 * NSIG] = st ? 0 : 1;
    COLLECTIVE(sizeof mine, MPI_Allreduce(mine, most, 2 * NSIG + 1,
                                          MPI_LONG_LONG, MPI_MAX, comm));
    for (int k = first; most[2 * NSIG] && k < NSIG; ++k)
        if (most[2 * k] != ~most[2 * k + 1]) return k;
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
clxent_status clx_mpi_consistent(clxent_context *ctx, MPI_Comm vocab,
                                 MPI_Comm batch, clxent_status st,
                                 size_t rows, size_t classes,
                                 const clxent_shard *sh,
                                 const clxent_options *o, int probs,
                                 long long targets, int has_z,
                                 int has_grad) {
    static const char *names[NSIG] = {
        "the rows (the vocabulary ranks must hold the same rows)",
        "the class indices (the vocabulary ranks must hold the same)",
        "classes_total", "the size of their vocabulary communicators",
        "the size of their batch communicators", "the reduction",
        "the kind of targets", "label_smoothing", "z_loss", "normalizer",
        "grad_scale", "ignore_index", "softcap", "logit_scale",
        "whether z_loss_out is given", "whether grad is given"};
    int vn, bn;
    MPI_Comm_size(vocab, &vn);
    MPI_Comm_size(batch, &bn);
    long long v[NSIG] = {(long long)rows, targets,
                         sh ? (long long)sh->classes_total : 0, vn, bn,
                         (long long)o->loss.reduction, probs,
                         bits_of(o->loss.label_smoothing), bits_of(o->loss.z_loss),
                         bits_of(o->loss.normalizer), bits_of(o->loss.grad_scale),
                         (long long)o->loss.ignore_index, bits_of(o->softcap),
                         bits_of(o->logit_scale), has_z, has_grad};
    int k = differs(vocab, st, v, 0), kb = differs(batch, st, v, VOCAB_ONLY);
    if (k < 0) k = kb;
    /* every rank of vocab runs the collective, whatever its batch said */
    clxent_status t = tiled(ctx, vocab, st, sh, classes);
    if (st || k < 0) return st ? st : t;
    char text[200];
    snprintf(text, sizeof text, "the ranks disagree on %s", names[k]);
    return clxent_context_set_error(ctx, CLXENT_STATUS_INVALID_ARGUMENT, FN,
                                    text);
}


/* What every rank can tell alone, before any collective (each of a
 * communicator's ranks answers the same): MPI running, and two
 * intracommunicators that are not one group (a grid's vocabulary and
 * batch ranks share only the rank itself). */
clxent_status clx_mpi_usable(clxent_context *ctx, MPI_Comm vocab,
                             MPI_Comm batch) {
    int up = 0, down = 0, inter_v = 0, inter_b = 0, same = MPI_UNEQUAL, n;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    const char *why = NULL;
    if (!up || down)
        why = "MPI is not running (call it between MPI_Init and "
              "MPI_Finalize)";
    else if (vocab == MPI_COMM_NULL || batch == MPI_COMM_NULL)
        why = "a communicator is MPI_COMM_NULL";
    if (!why) {
        MPI_Comm_test_inter(vocab, &inter_v);
        MPI_Comm_test_inter(batch, &inter_b);
        if (inter_v || inter_b)
            why = "an intercommunicator: vocab and batch must be "
                  "intracommunicators";
    }
    if (!why) {
        MPI_Comm_compare(vocab, batch, &same);
        MPI_Comm_size(vocab, &n);
        if (n > 1 && (same == MPI_IDENT || same == MPI_CONGRUENT))
            why = "vocab and batch are the same ranks: a rank's vocabulary "
                  "and batch communicators share only the rank itself";
    }
    if (!why) return CLXENT_STATUS_OK;
    if (!ctx) return CLXENT_STATUS_NULL_POINTER;
    return clxent_context_set_error(ctx, CLXENT_STATUS_INVALID_ARGUMENT, FN,
                                    why);
}
