/* `clxent tune` (cmd_tune.c: arguments, the before/after table, the file;
 * tune_steps.c: the measured steps). */
#ifndef CLXENT_TOOL_TUNE_H
#define CLXENT_TOOL_TUNE_H

#include "ops.h"

#include <clxent/clxent.h>

#include <stddef.h>

#define TUNE_MAX_SHAPES 16
#define TUNE_MAX_ROWS 128
#define TUNE_MAX_CHANGES 64

typedef struct tune_args {
    const char *device, *out, *name;
    size_t rows[TUNE_MAX_SHAPES], cols[TUNE_MAX_SHAPES], nshapes;
    unsigned ops;   /* 1 << ops_id of the operations tuned */
    unsigned match; /* bits: platform, vendor, device, driver, class */
    clxent_dtype dtype;
    double budget; /* seconds */
    size_t elements, repeat;
} tune_args;

/* One measurement: an operation on a shape in a storage type. */
typedef struct tune_point {
    const ops_desc *op;
    clxent_dtype dtype;
    size_t rows, cols;
    size_t inner; /* 0: a rows x cols matrix; else PyTorch's (rows/inner,
                   * cols, inner) through the _nd calls */
} tune_point;

/* A line of the before/after table. */
typedef struct tune_row {
    const ops_desc *op;
    size_t rows, cols;
    double before_ms, after_ms;
    char kernels_before[256], kernels_after[256];
} tune_row;

struct tune_ref; /* host reference outputs, cached per point */

typedef struct tune_run {
    const tune_args *a;
    clxent_context *dev, *host;
    double start_ms;
    double table_ms; /* what the first table took: kept for the last */
    tune_row table[TUNE_MAX_ROWS];
    size_t table_count;
    size_t steps_done, steps_total;
    char change[TUNE_MAX_CHANGES][200];
    size_t changes;
    struct tune_ref *refs;
} tune_run;

/* Checks p on the device against the host reference (an error when they
 * differ: the configuration is wrong), then times it: *ms the median,
 * *min_ms (may be NULL) the fastest run, which the steps compare (the
 * least disturbed by other work on a shared machine).
 * kernels (256 bytes, may be NULL) gets what ran, from the trace. 0, or
 * CLI_RUNTIME after a message. */
int tune_measure(tune_run *run, const tune_point *p, double *ms,
                 double *min_ms, char *kernels);
/* Runs every step that applies to the device and the operations, within
 * the budget; the parameters found stay set on run->dev. */
int tune_steps(tune_run *run);
/* The value of a threshold step's parameter from its timings: n points,
 * point i at C value cols[at[i]] (cols: nc values, ascending), timed with
 * the parameter at lo (low[i]) and at hi (high[i]). The split of the C
 * values with the least summed time, and of the values that split them so,
 * the one nearest current (lo or hi where the setting that would run
 * past the measured C values took infinite time: it computed wrong);
 * current where the split gains under 3%. */
long long tune_threshold_pick(const size_t *cols, size_t nc,
                              const size_t *at, const double *low,
                              const double *high, size_t n, long long current,
                              long long lo, long long hi);
/* Keeps only the match lines of the tuning file at path that mask names
 * (platform, vendor, device, driver, class). 0 or -1. */
int tune_keep_match(const char *path, unsigned mask);
void tune_free(tune_run *run);

#endif
