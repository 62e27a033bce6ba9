/* The rank grid of `--shard` (shard.h). Rank r holds vocabulary shard
 * v = r % V and batch shard b = r / V: the V ranks of one batch shard are
 * consecutive. */
#include "shard.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void shard_range(size_t n, int parts, int k, size_t *begin, size_t *end) {
    size_t q = n / (size_t)parts, r = n % (size_t)parts, kk = (size_t)k;
    *begin = kk * q + (kk < r ? kk : r);
    *end = *begin + q + (kk < r ? 1 : 0);
}

int shard_parse(const char *cmd, const char *spec, int *V, int *B) {
    *V = *B = 0;
    if (strcmp(spec, "vocab") == 0) { *B = 1; return 0; }
    if (strcmp(spec, "batch") == 0) { *V = 1; return 0; }
    int *part = V;
    const char *p = spec;
    /* Digits only: strtol would take a sign, spaces and overflow. */
    for (int k = 0; k < 2; k++, part = B) {
        long long v = 0;
        const char *digits = p;
        while (*p >= '0' && *p <= '9' && v <= INT_MAX)
            v = v * 10 + (*p++ - '0');
        if (p == digits || v < 1 || v > INT_MAX) break;
        *part = (int)v;
        if (k == 0 && (*p == 'x' || *p == 'X')) ++p;
        else if (k == 0 || *p) break;
        else return 0;
    }
    *V = *B = 0;
    return cli_usage_error(cmd, "--shard: '%s' is not vocab, batch or VxB "
                           "(V and B positive integers)", spec);
}

#ifdef CLXENT_WITH_MPI

int shard_available(void) { return 1; }

int shard_open(const char *cmd, const char *spec, shard_grid *g) {
    int inited = 0;
    memset(g, 0, sizeof *g);
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &g->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g->size);
    g->vocab = g->batch = MPI_COMM_NULL;
    int v = 0, b = 0;
    /* The command checked the spec's form; a bad one gives 0 x 0 here. */
    if (strcmp(spec, "vocab") == 0) {
        v = g->size, b = 1;
    } else if (strcmp(spec, "batch") == 0) {
        v = 1, b = g->size;
    } else if (shard_parse(cmd, spec, &v, &b) != 0) {
        v = b = 0;
    }
    if ((long long)v * b != g->size) {
        int rc = CLI_USAGE;
        if (g->rank == 0)
            rc = cli_usage_error(cmd, "--shard: '%s' is not vocab, batch or "
                                 "VxB with V*B = %d, the ranks (mpirun -np)",
                                 spec, g->size);
        shard_close(g);
        return rc;
    }
    g->V = v, g->B = b;
    g->v = g->rank % g->V, g->b = g->rank / g->V;
    MPI_Comm_split(MPI_COMM_WORLD, g->b, g->v, &g->vocab);
    MPI_Comm_split(MPI_COMM_WORLD, g->v, g->b, &g->batch);
    return 0;
}

void shard_close(shard_grid *g) {
    if (g->vocab != MPI_COMM_NULL) MPI_Comm_free(&g->vocab);
    if (g->batch != MPI_COMM_NULL) MPI_Comm_free(&g->batch);
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

int shard_agree_rc(const shard_grid *g, int rc) {
    (void)g;
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

#else

int shard_available(void) { return 0; }

int shard_open(const char *cmd, const char *spec, shard_grid *g) {
    memset(g, 0, sizeof *g);
    return cli_usage_error(cmd, "--shard %s: this clxent was built without "
                           "MPI (apt-get install openmpi-bin libopenmpi-dev, "
                           "then rebuild)", spec);
}

void shard_close(shard_grid *g) { (void)g; }

int shard_agree_rc(const shard_grid *g, int rc) {
    (void)g;
    return rc;
}

#endif
