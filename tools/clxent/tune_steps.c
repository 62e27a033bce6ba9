/* The steps of `clxent tune`. Two kinds:
 * - a threshold between two strategies of the table (a C-range parameter:
 *   "cmax" rows run for C <= value, "cmin" rows for C > value): each shape
 *   of the step is timed with the parameter at its lowest and its highest
 *   (every C taking one strategy, then the other), and the value kept is
 *   the split of the measured C values that minimises the summed time, if
 *   that beats the current value's by 3%;
 * - a kernel parameter with candidate values: each candidate is timed on
 *   the step's shapes; it replaces the current value only when it is at
 *   least 5% faster over them (mean log time ratio of the fastest runs),
 *   so noise does not move parameters.
 * The two settings compared are timed in turn, three rounds, keeping each
 * one's fastest run: what other work on a shared machine does then falls
 * on both. Every configuration is compared with the host reference before
 * it is timed (tune_measure); a wrong one is reported and never chosen. */
#include "bench.h"
#include "commands.h"
#include "tune.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cmd = "tune";

#define OPB(id) (1u << (id))
#define TUNE_WRONG 3 /* tune_measure: the configuration computes wrong */

typedef enum step_kind { STEP_CMAX, STEP_CMIN, STEP_VALUES } step_kind;

typedef struct tune_step {
    const char *param;
    step_kind kind;
    int mapping;        /* 1 the CPU mapping (vec > 1), 0 the GPU's */
    unsigned ops;       /* the operations it is measured on */
    clxent_dtype dtype; /* 0: the run's */
    size_t cols[10];    /* thresholds: the C values measured (0 ends) */
    long long values[8]; /* values: the candidates (-1 ends) */
    const char *why;
    size_t inner; /* > 0: measured on N-d shapes (outer, C, inner), the
                   * rows of the N-d kernels: a threshold's C values, or a
                   * kernel parameter's (then cols, not the run's shapes) */
} tune_step;

#define ENDV -1
static const tune_step steps[] = {
    /* kernel parameters first: the thresholds compare tuned kernels */
    {"kt", STEP_VALUES, 1, OPB(OPS_CE_FUSED) | OPB(OPS_CE_FORWARD) |
     OPB(OPS_SOFTMAX), 0, {0}, {1, 2, 4, 8, ENDV}, "vector loads per tile", 0},
    {"cached_block", STEP_VALUES, 1, OPB(OPS_CE_FUSED) | OPB(OPS_SOFTMAX), 0,
     {0}, {256, 512, 1024, 2048, 4096, ENDV}, "block of the cached rows", 0},
    {"small_group", STEP_VALUES, 1, OPB(OPS_CE_FUSED) | OPB(OPS_CE_FORWARD),
     0, {0}, {16, 32, 64, 128, ENDV}, "group of the lanes and batch kernels", 0},
    {"reduce_slots", STEP_VALUES, 1, OPB(OPS_NLL) | OPB(OPS_CE_FORWARD), 0,
     {0}, {32, 64, 128, 512, 1024, ENDV},
     "when the target check and reduction take a second level", 0},
    {"reduce_group", STEP_VALUES, 1, OPB(OPS_NLL) | OPB(OPS_CE_FORWARD), 0,
     {0}, {16, 32, 128, 256, ENDV}, "group of the check and reduction", 0},
    {"row_group", STEP_VALUES, 0, OPB(OPS_CE_FUSED) | OPB(OPS_CE_FORWARD) |
     OPB(OPS_SOFTMAX), 0, {0}, {64, 128, 256, 512, 1024, ENDV},
     "group of the rows kernels", 0},
    {"kt", STEP_VALUES, 0, OPB(OPS_CE_FUSED) | OPB(OPS_CE_FORWARD) |
     OPB(OPS_SOFTMAX), 0, {0}, {2, 4, 8, 16, ENDV}, "loads in flight", 0},
    /* thresholds of the CPU mapping: the lanes rows first, since they
     * are what the batch rows fall back to below their range */
    {"lanes_cmax", STEP_CMAX, 1, OPB(OPS_ROW_MAX), 0,
     {48, 64, 80, 96, 112, 120, 128}, {ENDV}, "lanes below, rows above", 0},
    {"lanes_log_softmax_cmax", STEP_CMAX, 1, OPB(OPS_LOG_SOFTMAX), 0,
     {48, 64, 80, 96, 112, 120, 128}, {ENDV}, "lanes below, rows above", 0},
    {"lanes_softmax_cmax", STEP_CMAX, 1, OPB(OPS_SOFTMAX), 0,
     {32, 48, 64, 80, 96, 112, 128}, {ENDV},
     "softmax: lanes below, cached above", 0},
    {"lanes_xent_cmax", STEP_CMAX, 1, OPB(OPS_CE_FUSED) | OPB(OPS_CE_FORWARD),
     CLXENT_F16, {48, 64, 80, 96, 112, 120, 128}, {ENDV},
     "f16 (its batch range starts last): lanes below, rows above", 0},
    {"lanes_bwd_cmax", STEP_CMAX, 1, OPB(OPS_CE_BACKWARD), 0,
     {9, 17, 24, 31, 40, 50, 63}, {ENDV},
     "backward: lanes below, element-wise above", 0},
    {"batch_cmin", STEP_CMIN, 1, OPB(OPS_CE_FUSED) | OPB(OPS_CE_FORWARD),
     CLXENT_F32, {40, 48, 56, 64, 72, 80, 96, 112}, {ENDV},
     "lanes below, batch above (f32)", 0},
    {"batch_cmax", STEP_CMAX, 1, OPB(OPS_CE_FUSED) | OPB(OPS_CE_FORWARD),
     CLXENT_F32, {512, 768, 1024, 1536, 2048, 3072}, {ENDV},
     "batch below, row kernels above", 0},
    {"batch_softmax_cmin", STEP_CMIN, 1,
     OPB(OPS_LOG_SOFTMAX) | OPB(OPS_SOFTMAX), 0,
     {64, 80, 96, 112, 128, 160}, {ENDV}, "lanes below, batch above", 0},
    {"batch_bf16_cmin", STEP_CMIN, 1, OPB(OPS_CE_FUSED), CLXENT_BF16,
     {72, 80, 88, 96, 104, 112, 120}, {ENDV}, "fused bf16: lanes, batch", 0},
    {"batch_f16_cmin", STEP_CMIN, 1, OPB(OPS_CE_FUSED), CLXENT_F16,
     {72, 80, 88, 96, 104, 112, 120}, {ENDV}, "fused f16: lanes, batch", 0},
    /* the N-d kernels: their own programs (a compile each on a
     * cold cache), so after the 2-D steps */
    {"nd_prefetch", STEP_VALUES, 1, OPB(OPS_CE_FUSED), CLXENT_F32, {21, 150},
     {0, 1, ENDV}, "N-d: prefetch the next item's logits", 4096},
    {"nd_narrow", STEP_VALUES, 1, OPB(OPS_CE_FUSED), CLXENT_F32, {21, 150},
     {0, 1, ENDV}, "N-d: vectors narrowed to an inner extent of 8", 8},
    {"nd_tail_pieces", STEP_VALUES, 1, OPB(OPS_CE_BACKWARD), CLXENT_F32,
     {21, 150}, {0, 1, ENDV},
     "N-d: the tail of an inner extent of 20 in pieces", 20},
    {"nd_kept_cmax", STEP_CMAX, 1, OPB(OPS_CE_FUSED), CLXENT_F32,
     {256, 512, 1024, 2048, 4096, 8192}, {ENDV},
     "N-d fused f32: exps kept in the gradient below, chunked (or, past "
     "nd_unroll vectors of inner positions, wide) rows above", 64},
    /* at a wide inner extent, where the wide rows run past this C and
     * the kept rows below it (up to nd_kept_cmax, measured above) */
    {"nd_wide_cmin", STEP_CMIN, 1, OPB(OPS_CE_FUSED), CLXENT_F32,
     {256, 512, 1024, 2048, 4096, 8192}, {ENDV},
     "N-d fused f32, inner extents past nd_unroll vectors: kept rows below, "
     "wide rows above", 512},
    /* before nd_cached_cmax, which may close the cached row */
    {"nd_kept_imin", STEP_VALUES, 1, OPB(OPS_CE_FUSED), CLXENT_F32, {21, 100},
     {0, 16, ENDV},
     "N-d fused f32, inner extents of part of a vector: kept or cached", 6},
    {"nd_cached_cmax", STEP_CMAX, 1, OPB(OPS_CE_FUSED), CLXENT_BF16,
     {32, 64, 128, 256, 384, 512, 768, 1024}, {ENDV},
     "N-d fused bf16: classes held in registers below, two passes above",
     64},
    {"nd_wide16_cmin", STEP_CMIN, 1, OPB(OPS_CE_FUSED), CLXENT_BF16,
     {64, 128, 256, 384, 512, 768, 1024}, {ENDV},
     "N-d fused bf16, inner extents past nd_unroll vectors: classes held in "
     "registers below, wide rows above", 512},
    /* thresholds of the GPU mapping */
    {"regs_cmin", STEP_CMIN, 0, OPB(OPS_CE_FUSED), 0,
     {256, 512, 1024, 2048, 4096, 8192}, {ENDV},
     "rows below, register-held rows above", 0},
};
#define STEP_COUNT (sizeof steps / sizeof *steps)

/* ---- host references ---- */

typedef struct tune_ref {
    tune_point p;
    float loss;
    float *out, *vec; /* as f32; NULL when the op writes none */
    struct tune_ref *next;
} tune_ref;

void tune_free(tune_run *run) {
    while (run->refs) {
        tune_ref *r = run->refs;
        run->refs = r->next;
        free(r->out);
        free(r->vec);
        free(r);
    }
}

/* Random logits in [-4, 4), never 0, and valid targets, fixed per shape. */
static int make_inputs(const tune_point *p, void **x, int32_t **y) {
    *x = NULL;
    *y = NULL;
    if (!cli_shape_fits(p->rows, p->cols, 1))
        return cli_fail(cmd, "%zux%zu is too large", p->rows, p->cols);
    size_t n = p->rows * p->cols;
    cli_rng rng = cli_rng_seed(p->rows * 1000003u + p->cols);
    float *f = malloc(n * sizeof *f);
    *y = malloc(p->rows * sizeof **y);
    if (f && *y) {
        for (size_t i = 0; i < n; i++) {
            float v = (float)cli_rng_uniform(&rng, -4.0, 4.0);
            f[i] = v == 0.0f ? 0.5f : v;
        }
        for (size_t r = 0; r < p->rows; r++)
            (*y)[r] = (int32_t)(cli_rng_next(&rng) % p->cols);
        *x = cli_from_f32(f, n, p->dtype);
    }
    free(f);
    if (*x) return 0;
    free(*y);
    return cli_fail(cmd, "out of memory for %zux%zu", p->rows, p->cols);
}

/* Runs p once on ctx and reads what it wrote into ref's fields. */
static clxent_status run_once(clxent_context *ctx, const tune_point *p,
                              const bench_bufs *b, tune_ref *out) {
    clxent_status st = bench_enqueue(ctx, p->op, b);
    if (st == CLXENT_STATUS_OK) st = clxent_finish(ctx);
    size_t n = p->rows * p->cols, es = clxent_dtype_size(p->dtype);
    unsigned io = p->op->io;
    if (st == CLXENT_STATUS_OK && (io & OPS_LOSS))
        st = clxent_buffer_read(ctx, b->loss, 0, 4, &out->loss);
    if (st == CLXENT_STATUS_OK && (io & (OPS_GRAD | OPS_MAT_OUT))) {
        void *raw = malloc(n * es);
        st = raw ? clxent_buffer_read(ctx, b->out, 0, n * es, raw)
                 : CLXENT_STATUS_OUT_OF_MEMORY;
        if (st == CLXENT_STATUS_OK) {
            out->out = cli_to_f32(raw, n, p->dtype);
            if (!out->out) st = CLXENT_STATUS_OUT_OF_MEMORY;
        }
        free(raw);
    }
    if (st == CLXENT_STATUS_OK && (io & OPS_VEC_OUT)) {
        out->vec = malloc(p->rows * sizeof(float));
        st = out->vec ? clxent_buffer_read(ctx, b->vec, 0, p->rows * 4,
                                           out->vec)
                      : CLXENT_STATUS_OUT_OF_MEMORY;
    }
    return st;
}

/* The point's buffers: a matrix, or PyTorch's (N, C, inner) (the same
 * values, read in the other layout). */
static clxent_status make_bufs(clxent_context *ctx, const tune_point *p,
                               const void *x, const int32_t *y,
                               bench_bufs *b) {
    if (p->inner)
        return bench_bufs_make_nd(ctx, x, y, p->rows / p->inner, p->cols,
                                  p->inner, p->dtype, b);
    return bench_bufs_make(ctx, x, y, p->rows, p->cols, p->dtype, b);
}

static int same_point(const tune_point *a, const tune_point *b) {
    return a->op == b->op && a->dtype == b->dtype && a->rows == b->rows &&
           a->cols == b->cols && a->inner == b->inner;
}

static int host_ref(tune_run *run, const tune_point *p, const void *x,
                    const int32_t *y, tune_ref **ref) {
    for (tune_ref *r = run->refs; r; r = r->next)
        if (same_point(&r->p, p)) {
            *ref = r;
            return 0;
        }
    tune_ref *r = calloc(1, sizeof *r);
    if (!r) return cli_fail(cmd, "out of memory");
    r->p = *p;
    bench_bufs b;
    clxent_status st = make_bufs(run->host, p, x, y, &b);
    if (st == CLXENT_STATUS_OK) {
        st = run_once(run->host, p, &b, r);
        bench_bufs_release(&b);
    }
    if (st != CLXENT_STATUS_OK) {
        free(r->out);
        free(r->vec);
        free(r);
        return cli_fail_status(cmd, run->host, st, "host reference");
    }
    r->next = run->refs;
    run->refs = r;
    *ref = r;
    return 0;
}

/* Each error within tol of the value plus the largest value (a mean's
 * gradient is tiny everywhere: an absolute bound would hide a wrong
 * kernel), plus step, NaN only where the reference has NaN; tol allows
 * the storage type's rounding, step one subnormal step of it (a mean's
 * f16 gradient at 43690 rows is subnormal, and the f32 result and the
 * host's double can round to neighbouring steps). */
static int close_all(const float *got, const float *want, size_t n,
                     double tol, double step, size_t *bad) {
    double top = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want[i])) top = fmax(top, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (isnan(w) ? !isnan(g)
                     : !(fabs(g - w) <= tol * (fabs(w) + top) + step)) {
            *bad = i;
            return 0;
        }
    }
    return 1;
}

int tune_measure(tune_run *run, const tune_point *p, double *ms,
                 double *min_ms, char *kernels) {
    void *x;
    int32_t *y;
    int rc = make_inputs(p, &x, &y);
    if (rc) return rc;
    tune_ref *ref = NULL;
    rc = host_ref(run, p, x, y, &ref);
    bench_bufs b;
    clxent_status st = CLXENT_STATUS_OK;
    if (!rc) {
        st = make_bufs(run->dev, p, x, y, &b);
        if (st != CLXENT_STATUS_OK)
            rc = cli_fail_status(cmd, run->dev, st, "device buffers");
    }
    free(x);
    free(y);
    if (rc) return rc;
    tune_ref got = {*p, 0, NULL, NULL, NULL};
    st = run_once(run->dev, p, &b, &got);
    if (st != CLXENT_STATUS_OK) {
        bench_bufs_release(&b);
        free(got.out);
        free(got.vec);
        return cli_fail_status(cmd, run->dev, st, p->op->bench_name);
    }
    const char *trace = clxent_context_last_trace(run->dev);
    if (kernels) {
        const char *from = strstr(trace, "-> "), *to = strstr(trace, " [tuning");
        size_t n = from && to && to > from ? (size_t)(to - from - 3) : 0;
        snprintf(kernels, 256, "%.*s", (int)(n < 255 ? n : 255),
                 from ? from + 3 : "");
    }
    double tol = p->dtype == CLXENT_BF16  ? 1.6e-2
                 : p->dtype == CLXENT_F16 ? 2e-3
                                          : 2e-5;
    size_t bad = 0;
    const char *wrong = NULL;
    double step = p->dtype == CLXENT_BF16  ? 0x1p-133
                  : p->dtype == CLXENT_F16 ? 0x1p-24
                                           : 0.0;
    if ((p->op->io & OPS_LOSS) && !close_all(&got.loss, &ref->loss, 1, 1e-4,
                                             0.0, &bad))
        wrong = "loss";
    else if (got.out && !close_all(got.out, ref->out, p->rows * p->cols, tol,
                                   step, &bad))
        wrong = "matrix output";
    else if (got.vec &&
             !close_all(got.vec, ref->vec, p->rows, 2e-5, 0.0, &bad))
        wrong = "row output";
    free(got.out);
    free(got.vec);
    if (wrong) {
        bench_bufs_release(&b);
        fprintf(stderr,
                "clxent tune: %s %zux%zu %s: %s[%zu] differs from the host "
                "reference with %s; not chosen\n",
                p->op->bench_name, p->rows, p->cols,
                clxent_dtype_name(p->dtype), wrong, bad, trace);
        return TUNE_WRONG;
    }
    double min = 0;
    int wall = 0;
    st = bench_time(run->dev, p->op, &b, run->a->repeat, ms, &min, &wall);
    if (min_ms) *min_ms = min;
    bench_bufs_release(&b);
    if (st != CLXENT_STATUS_OK)
        return cli_fail_status(cmd, run->dev, st, p->op->bench_name);
    return 0;
}

/* ---- the steps ---- */

static double elapsed_s(const tune_run *run) {
    return (bench_now_ms() - run->start_ms) / 1e3;
}

/* Whether the budget still has room for `seconds` more, keeping what the
 * after table will take. */
static int fits(const tune_run *run, double seconds) {
    return elapsed_s(run) + seconds + run->table_ms / 1e3 <=
           run->a->budget;
}

static void note(tune_run *run, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void note(tune_run *run, const char *format, ...) {
    if (run->changes == TUNE_MAX_CHANGES) return;
    va_list ap;
    va_start(ap, format);
    vsnprintf(run->change[run->changes++], sizeof run->change[0], format, ap);
    va_end(ap);
    fprintf(stderr, "clxent tune: %s\n", run->change[run->changes - 1]);
}

/* The points of a step: the run's shapes (values) or its C values at
 * --elements (thresholds, and values measured on N-d shapes), for each of
 * its operations that is tuned. */
static size_t step_points(const tune_run *run, const tune_step *s,
                          tune_point *pts, size_t cap) {
    size_t n = 0;
    for (int id = 0; id < OPS_COUNT; id++) {
        if (!(s->ops & OPB(id)) || !(run->a->ops & OPB(id))) continue;
        clxent_dtype dt = s->dtype ? s->dtype : run->a->dtype;
        if (s->kind == STEP_VALUES && !s->inner) {
            for (size_t i = 0; i < run->a->nshapes && n < cap; i++)
                pts[n++] = (tune_point){&ops_table[id], dt, run->a->rows[i],
                                        run->a->cols[i], 0};
        } else {
            for (size_t i = 0; i < 10 && s->cols[i] && n < cap; i++) {
                size_t C = s->cols[i], R = run->a->elements / C;
                size_t unit = s->inner ? s->inner : 1; /* whole outers */
                R = R < unit ? unit : R / unit * unit;
                pts[n++] = (tune_point){&ops_table[id], dt, R, C, s->inner};
            }
        }
    }
    return n;
}

#define ROUNDS 3 /* the two settings of a comparison, measured in turn */

/* Times every point with parameter `param` at a and at b, in turn for
 * ROUNDS rounds (noise from other work on the machine then hits both),
 * keeping each setting's fastest run: ta, tb (INFINITY where a setting
 * computes wrong). 0, 1 over the budget, or an error. */
static int time_pair(tune_run *run, const char *param, long long a,
                     long long b, const tune_point *pts, size_t n,
                     double *ta, double *tb, double *cost) {
    for (size_t i = 0; i < n; i++) ta[i] = tb[i] = INFINITY;
    for (int round = 0; round < ROUNDS; round++)
        for (size_t i = 0; i < n; i++)
            for (int side = 0; side < 2; side++) {
                double *t = side ? &tb[i] : &ta[i];
                if (isinf(*t) && round > 0) continue; /* wrong: stays */
                if (!fits(run, *cost)) return 1;
                clxent_status st = clxent_context_set_param(
                    run->dev, param, side ? b : a);
                if (st != CLXENT_STATUS_OK)
                    return -cli_fail_status(cmd, run->dev, st, param);
                double start = bench_now_ms(), median, min = INFINITY;
                int rc = tune_measure(run, &pts[i], &median, &min, NULL);
                if (rc && rc != TUNE_WRONG) return -rc;
                if (rc == TUNE_WRONG) continue;
                if (min < *t) *t = min;
                double took = (bench_now_ms() - start) / 1e3;
                if (took > *cost) *cost = took;
            }
    return 0;
}

static int info_index(const char *param) {
    const char *name;
    for (int i = 0; (name = clxent_param_name((size_t)i, NULL)); i++)
        if (strcmp(name, param) == 0) return i;
    return -1;
}

/* The lowest and highest value a threshold parameter takes here. */
static void threshold_range(const tune_step *s, long long *lo,
                            long long *hi) {
    *lo = 0;
    /* the kernels that hold a row in registers have a build limit */
    *hi = strncmp(s->param, "lanes", 5) == 0       ? 128
          : strncmp(s->param, "nd_cached", 9) == 0 ? 1024
                                                   : 1 << 30;
}

long long tune_threshold_pick(const size_t *cols, size_t nc,
                              const size_t *at, const double *low,
                              const double *high, size_t n, long long current,
                              long long lo, long long hi) {
    /* the C values in order, each with the time below (C <= T) and above
     * the threshold: cmax rows take the high setting's strategy for C <=
     * T, cmin rows the low setting's for C > T */
    double best = INFINITY, at_current = INFINITY;
    long long best_t = current;
    /* a strategy that computed wrong at a measured C is not kept at the
     * unmeasured ones either */
    int low_wrong = 0, high_wrong = 0;
    for (size_t i = 0; i < n; i++) {
        low_wrong |= !isfinite(low[i]);
        high_wrong |= !isfinite(high[i]);
    }
    for (size_t k = 0; k <= nc; k++) { /* the first k C values below */
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            /* below T: the strategy the highest setting gives every C
             * (a cmax row applies, a cmin row does not) */
            sum += at[i] < k ? high[i] : low[i];
        /* T anywhere in [C_k-1, C_k - 1] decides the measured C values
         * alike: the value there nearest the current one, so that the C
         * values outside the measured range keep the strategy they had
         * (an end of the range, lo or hi, would move them all unmeasured:
         * batch_softmax_cmin 0 sent softmax of 10 columns to the batch
         * kernel, 2.4x slower than lanes) */
        long long t_lo = k ? (long long)cols[k - 1] : lo;
        long long t_hi = k < nc ? (long long)cols[k] - 1 : hi;
        long long t = current < t_lo ? t_lo : current > t_hi ? t_hi : current;
        if (k == 0 && high_wrong) t = lo;
        if (k == nc && low_wrong) t = hi;
        if (t == current) at_current = sum;
        /* equal sums (no point between two splits): the nearer value */
        if (sum < best ||
            (sum == best && llabs(t - current) < llabs(best_t - current))) {
            best = sum;
            best_t = t;
        }
    }
    /* noise must not move a threshold: a 3% gain over the step's points,
     * or the current value stays (unless it computes wrong) */
    if (isfinite(at_current) && best > at_current * 0.97) best_t = current;
    return best_t;
}

static int run_threshold(tune_run *run, const tune_step *s, tune_point *pts,
                         size_t n, long long current, double *cost) {
    double *low = calloc(n, sizeof *low), *high = calloc(n, sizeof *high);
    size_t *at = calloc(n, sizeof *at); /* each point's C, as an index */
    if (!low || !high || !at) {
        free(low);
        free(high);
        free(at);
        return cli_fail(cmd, "out of memory");
    }
    long long lo, hi;
    threshold_range(s, &lo, &hi);
    int rc = time_pair(run, s->param, lo, hi, pts, n, low, high, cost);
    long long best_t = current; /* what a failed timing leaves set */
    size_t nc = 0;
    while (nc < 10 && s->cols[nc]) nc++;
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            while (at[i] < nc && s->cols[at[i]] != pts[i].cols) at[i]++;
        best_t = tune_threshold_pick(s->cols, nc, at, low, high, n, current,
                                     lo, hi);
    }
    free(at);
    free(low);
    free(high);
    clxent_status st = clxent_context_set_param(run->dev, s->param, best_t);
    if (rc) return rc;
    if (st != CLXENT_STATUS_OK)
        return cli_fail_status(cmd, run->dev, st, s->param);
    note(run, "%s %lld -> %lld (%s; measured C %zu..%zu)", s->param, current,
         best_t, s->why, s->cols[0], s->cols[nc - 1]);
    return 0;
}

static int run_values(tune_run *run, const tune_step *s, tune_point *pts,
                      size_t n, long long current, double *cost) {
    double *base = calloc(n, sizeof *base), *t = calloc(n, sizeof *t);
    if (!base || !t) {
        free(base);
        free(t);
        return cli_fail(cmd, "out of memory");
    }
    int rc = 0;
    long long best_v = current;
    double best = 0; /* sum of log ratios against the current value */
    char tried[160] = "";
    /* kt 0 is "by the mapping": 8 for vec 1, else 2 */
    long long vec = 0, same = current;
    clxent_context_get_param(run->dev, "vec", &vec);
    if (strcmp(s->param, "kt") == 0 && current == 0) same = vec == 1 ? 8 : 2;
    for (int i = 0; !rc && s->values[i] != ENDV; i++) {
        long long v = s->values[i];
        if (v == current || v == same) continue;
        rc = time_pair(run, s->param, current, v, pts, n, base, t, cost);
        if (rc) break;
        double score = 0;
        for (size_t j = 0; j < n; j++) score += log(t[j] / base[j]);
        score /= (double)n;
        size_t len = strlen(tried);
        snprintf(tried + len, sizeof tried - len, " %lld:%+.0f%%", v,
                 100 * (exp(score) - 1));
        if (score < best && score < log(0.95)) {
            best = score;
            best_v = v;
        }
    }
    free(base);
    free(t);
    clxent_context_set_param(run->dev, s->param, best_v);
    if (rc) return rc;
    note(run, "%s %lld -> %lld (%s;%s)", s->param, current, best_v, s->why,
         tried);
    return 0;
}

int tune_steps(tune_run *run) {
    long long vec = 0;
    clxent_context_get_param(run->dev, "vec", &vec);
    int cpu_mapping = vec > 1;
    /* the last table measures both settings: about twice the first */
    run->table_ms = 2 * (bench_now_ms() - run->start_ms);
    run->steps_total = 0;
    tune_point pts[64];
    for (size_t i = 0; i < STEP_COUNT; i++) {
        const tune_step *s = &steps[i];
        if (s->mapping != cpu_mapping || info_index(s->param) < 0 ||
            !step_points(run, s, pts, 64))
            continue;
        run->steps_total++;
    }
    double cost = 0; /* the longest measurement so far, to stop in time */
    for (size_t i = 0; i < STEP_COUNT; i++) {
        const tune_step *s = &steps[i];
        size_t n = step_points(run, s, pts, 64);
        if (s->mapping != cpu_mapping || info_index(s->param) < 0 || !n)
            continue;
        long long current = 0;
        clxent_context_get_param(run->dev, s->param, &current);
        fprintf(stderr, "clxent tune: [%zu/%zu] %s (%s), %.0f s so far\n",
                run->steps_done + 1, run->steps_total, s->param, s->why,
                elapsed_s(run));
        int rc = s->kind == STEP_VALUES
                     ? run_values(run, s, pts, n, current, &cost)
                     : run_threshold(run, s, pts, n, current, &cost);
        if (rc == 1) {
            note(run, "%s and the steps after it: over the budget, kept",
                 s->param);
            break;
        }
        if (rc) return rc < 0 ? -rc : rc;
        run->steps_done++;
    }
    return 0;
}

int tune_keep_match(const char *path, unsigned mask) {
    static const char *const keys[] = {"match.platform ", "match.vendor ",
                                       "match.device ", "match.driver ",
                                       "match.class "};
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *text = NULL;
    size_t len = 0, cap = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        int drop = 0;
        for (int k = 0; k < 5; k++)
            if (!(mask & (1u << k)) && strncmp(line, keys[k],
                                               strlen(keys[k])) == 0)
                drop = 1;
        if (drop) continue;
        size_t n = strlen(line);
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *grown = realloc(text, cap);
            if (!grown) {
                free(text);
                fclose(f);
                return -1;
            }
            text = grown;
        }
        memcpy(text + len, line, n + 1);
        len += n;
    }
    fclose(f);
    f = fopen(path, "w");
    int bad = !f || (len && fwrite(text, 1, len, f) != len);
    if (f && fclose(f) != 0) bad = 1;
    free(text);
    return bad ? -1 : 0;
}
