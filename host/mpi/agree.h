/* The agreement layer of clxent_mpi (clxent_mpi.c): every rank's status
 * and arguments compared over the vocabulary and batch communicators
 * before an exchange, so no rank waits in a collective another skipped. */
#ifndef CLXENT_MPI_AGREE_H
#define CLXENT_MPI_AGREE_H

#include <clxent/clxent_mpi.h>

#define FN "clxent_mpi_cross_entropy_nd"

/* What the calling thread's step spent on MPI (clxent_mpi_last_stats). */
extern _Thread_local clxent_mpi_stats clx_mpi_stats;

/* Runs one collective, counting its time and the bytes this rank gave. */
#define COLLECTIVE(bytes, call)                                                \
    do {                                                                       \
        double t0_ = MPI_Wtime();                                              \
        call;                                                                  \
        clx_mpi_stats.mpi_seconds += MPI_Wtime() - t0_;                        \
        clx_mpi_stats.exchanged_bytes += (size_t)(bytes);                      \
        ++clx_mpi_stats.collectives;                                           \
    } while (0)

/* What every rank can tell alone, before any collective: MPI running, two
 * intracommunicators that are not one group. */
clxent_status clx_mpi_usable(clxent_context *ctx, MPI_Comm vocab,
                             MPI_Comm batch);
/* st agreed over vocab, then batch: the lowest failing rank's status and
 * message on every rank. */
clxent_status clx_mpi_agree(clxent_context *ctx, MPI_Comm vocab,
                            MPI_Comm batch, clxent_status st);
/* The sum of one double per rank of comm, in rank order on every rank. */
double clx_mpi_sum_ranks(MPI_Comm comm, double value, clxent_status *st);
/* The arguments the ranks must share, compared (INVALID_ARGUMENT naming
 * the first that differs), and the vocabulary ranks' classes tiling
 * [0, classes_total). st: this rank's status so far (it then takes no
 * part); targets: a hash of its class indices. */
clxent_status clx_mpi_consistent(clxent_context *ctx, MPI_Comm vocab,
                                 MPI_Comm batch, clxent_status st,
                                 size_t rows, size_t classes,
                                 const clxent_shard *sh,
                                 const clxent_options *o, int probs,
                                 long long targets, int has_z,
                                 int has_grad);

#endif /* CLXENT_MPI_AGREE_H */
