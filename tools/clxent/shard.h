/* `clxent run --shard` and `clxent bench --shard` under mpirun: the grid
 * of ranks (V vocabulary shards x B batch shards), its communicators, and
 * which block of a tensor each rank holds. Built with MPI
 * (CLXENT_WITH_MPI) or answering that the command was not. */
#ifndef CLXENT_TOOL_SHARD_H
#define CLXENT_TOOL_SHARD_H

#include "commands.h"

#ifdef CLXENT_WITH_MPI
#include <clxent/clxent_mpi.h>
#endif

typedef struct shard_grid {
    int V, B;       /* vocabulary shards x batch shards = ranks */
    int rank, size; /* in MPI_COMM_WORLD */
    int v, b;       /* this rank's vocabulary and batch shard */
#ifdef CLXENT_WITH_MPI
    MPI_Comm vocab, batch; /* the ranks of this batch shard / vocab shard */
#endif
} shard_grid;

/* The form of a grid spec, checked before MPI starts: "vocab" (*V 0:
 * every rank, *B 1), "batch" (*V 1, *B 0) or "VxB" with V and B in
 * 1..INT_MAX. 0, or CLI_USAGE after a message. */
int shard_parse(const char *cmd, const char *spec, int *V, int *B);
/* Whether the command was linked with MPI. */
int shard_available(void);
/* MPI_Init (once), then the grid spec ("vocab", "batch" or "VxB") over
 * the ranks: 0, or CLI_USAGE after a message (rank 0 prints). */
int shard_open(const char *cmd, const char *spec, shard_grid *g);
/* Frees the communicators and finalizes MPI. */
void shard_close(shard_grid *g);
/* [*begin, *end) of n items split into parts nearly equal parts, part k. */
void shard_range(size_t n, int parts, int k, size_t *begin, size_t *end);
/* The largest rc of all ranks (so that every rank exits alike). */
int shard_agree_rc(const shard_grid *g, int rc);

#endif
