/* clxent_mpi: the sharded loss across MPI ranks (library clxent_mpi, CMake
 * target clxent::mpi; built when CMake finds MPI, CLXENT_MPI=OFF turns it
 * off). One call does the whole step on every rank of the two
 * communicators: the rows' classes split across `vocab` (vocabulary
 * parallel), the rows split across `batch` (data parallel), or both (a
 * grid: every rank in one vocab and one batch communicator).
 *
 * Only O(rows) numbers cross between ranks: the partial records
 * (clxent.h, "Sharded vocabulary"), combined with an MPI reduction in rank
 * order (deterministic for a given rank count), the global mean
 * denominator and the scalar losses. With one rank per vocabulary
 * communicator (rows split only) there are no records: the global W
 * (from the targets and weights) first, then the one-device fused call
 * over it. The result equals the unsharded call on one device, within
 * docs/semantics.md's bounds.
 *
 * Statuses are agreed before every exchange: a bad argument or class
 * index on one rank returns the same status on every rank (the others'
 * message names the rank and its message), and nothing is written to the
 * callers' outputs unless every rank's arguments were accepted. Never a
 * hang or an abort for bad input. MPI errors themselves follow the
 * communicators' error handlers. */
#ifndef CLXENT_CLXENT_MPI_H
#define CLXENT_CLXENT_MPI_H

#include <clxent/clxent.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) || !defined(__GNUC__)
#define CLXENT_MPI_API
#else
#define CLXENT_MPI_API __attribute__((visibility("default")))
#endif

/* Cross-entropy, forward and gradient, over ranks.
 *   vocab: ranks holding the same rows and different classes (shard says
 *          which; MPI_COMM_SELF: this rank holds all classes)
 *   batch: ranks holding different rows (MPI_COMM_SELF: none)
 *   logits, targets, weights: this rank's block (class indices global;
 *          weights and probabilities of the shard's classes)
 *   shard: the rank's classes; NULL means all of logits' classes
 *   options: as clxent_cross_entropy_nd (validate_only must be 0; the
 *          target check is always synchronous: every rank learns of a
 *          bad class index before the call returns)
 *   loss:  sum and mean: the global loss, 1 x 1, on every rank; none:
 *          this rank's rows
 *   lse, z_loss_out, grad_rows: optional, as clxent_cross_entropy_nd
 *   grad:  optional, the gradient of this rank's block (mean: over the
 *          global W, unless options give a normalizer)
 * Collective over both communicators: every rank must call it, between
 * MPI_Init and MPI_Finalize, with two intracommunicators that are not the
 * same ranks. What the ranks must share is checked before any exchange
 * (INVALID_ARGUMENT on every rank otherwise): the vocabulary ranks' rows
 * and class indices, classes_total, the reduction, the kind of targets,
 * every option, whether z_loss_out and grad are given, the sizes of the
 * vocabulary and batch communicators, and the vocabulary ranks' classes
 * tiling [0, classes_total), each class on one rank. The mean over class
 * indices needs the global W (the valid rows' weights) positive, else
 * INVALID_ARGUMENT: give options.normalizer. */
CLXENT_MPI_API clxent_status clxent_mpi_cross_entropy_nd(
    clxent_context *ctx, MPI_Comm vocab, MPI_Comm batch,
    const clxent_tensor *logits, const clxent_tensor_targets *targets,
    const clxent_vector *weights, const clxent_shard *shard,
    const clxent_options *options, const clxent_tensor *grad_rows,
    const clxent_tensor *loss, const clxent_tensor *lse,
    const clxent_tensor *z_loss_out, const clxent_tensor *grad);

/* What the calling thread's last clxent_mpi_cross_entropy_nd spent on
 * MPI: seconds inside MPI calls (waits for slower ranks included), the
 * bytes this rank contributed to the collectives (O(rows): 32 a row for
 * the records over the vocabulary ranks, a few words per agreement and
 * scalar), and the number of collective calls. */
typedef struct clxent_mpi_stats {
    double mpi_seconds;
    size_t exchanged_bytes;
    int collectives;
} clxent_mpi_stats;
CLXENT_MPI_API void clxent_mpi_last_stats(clxent_mpi_stats *stats);

/* The MPI record combine as an operation on MPI datatype
 * clxent_mpi_record_type() (CLXENT_PARTIAL_FLOATS floats), for callers
 * who reduce records themselves: created on first use, freed by
 * MPI_Finalize. Non-commutative, so MPI applies it in rank order. */
CLXENT_MPI_API MPI_Op clxent_mpi_combine_op(void);
CLXENT_MPI_API MPI_Datatype clxent_mpi_record_type(void);

#ifdef __cplusplus
}
#endif
#endif /* CLXENT_CLXENT_MPI_H */
