/* clxent bench: throughput of each operation against the copy bandwidth of
 * the same device, measured in the same run, with the host backend for
 * scale. Bytes counted are the minimum an operation must move. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, strtok_r */
#include "bench.h"
#include "commands.h"
#include "shard.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *cmd = "bench";
#define MAX_SHAPES 32
#define HOST_LIMIT 50000000.0 /* elements; beyond, the host is too slow */

static void help(void) {
    printf("Usage: clxent bench [--device SPEC] [--shapes SHAPE[,SHAPE...]]\n"
           "                    [--ops ");
    for (int rank = 0; rank < OPS_BENCH_COUNT; rank++)
        printf("%s%s", rank ? "," : "", ops_bench(rank)->bench_name);
    printf(
        "]\n"
        "                    [--dtype f32|f16|bf16] [--repeat K] [--json] "
        "[--svg FILE]\n                    [--no-host] [--explain] "
        "[--shard vocab|batch|VxB]\n\n"
        "Times each op on random logits in [-4, 4) (never 0) and valid "
        "targets: one\nwarm-up, then K repeats (default 10) of device time "
        "from profiling events\n(wall clock where the backend has none). "
        "Reports median and min ms,\nGelem/s, GB/s over the minimum bytes "
        "(fused: logits + gradient + targets;\nforward: logits + targets; "
        "backward: logits + gradient + targets + lse;\nlog_softmax/softmax: "
        "read + write; row_max: logits + result; nll: targets +\ngathered "
        "values), the fraction of the copy bandwidth (clxent_copy over the "
        "same\nbytes, read + write), and the host backend's time on shapes up "
        "to 50M elements\n(--no-host skips it). --explain adds the kernels each op "
        "ran and their\nparameters (as CLXENT_TRACE prints them) and the "
        "context's tuning source.\nA SHAPE is RxC (rows x classes, the matrix "
        "calls) or PyTorch's NxCxD1[xD2..]\n(classes on axis 1, targets "
        "N x D1.., up to 7 D's), run through the _nd calls\nas outer N, C "
        "classes, inner D1*D2*..; elements and bytes count N*C*D1*.. values\n"
        "as for RxC with R = N*D1*...\nDefault shapes: 65536x10,4096x1000,"
        "1024x32000,256x128256,8x1048576.\n"
        "--shard (under mpirun, --ops fused): the fused loss and gradient "
        "of each shape\nsplit over the ranks as `clxent run --shard` splits "
        "it, wall clock from one\nbarrier to the next, beside the unsharded "
        "call on rank 0's device alone.\n");
}

typedef struct bench_args {
    const char *device, *svg, *shard;
    bench_shape_arg shapes[MAX_SHAPES];
    size_t nshapes, repeat;
    int ops[OPS_BENCH_COUNT], json, no_host, explain; /* by bench rank */
    clxent_dtype dtype;
} bench_args;

static int parse_ops(const char *text, int *ops) {
    memset(ops, 0, OPS_BENCH_COUNT * sizeof *ops);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    int any = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int i = 0; i < OPS_BENCH_COUNT; i++)
            if (strcmp(tok, ops_bench(i)->bench_name) == 0)
                ops[i] = found = any = 1;
        if (!found)
            return cli_usage_error(cmd, "--ops: unknown op '%s'", tok);
    }
    return any ? 0 : cli_usage_error(cmd, "--ops: no op given");
}

/* --shapes: a comma-separated list of 2 to 2 + CLXENT_MAX_INNER_DIMS
 * positive sizes joined by 'x'. */
static int parse_shapes(const char *text, bench_args *a) {
    a->nshapes = 0;
    const char *p = text;
    for (;;) {
        size_t dims[2 + CLXENT_MAX_INNER_DIMS], n = 0;
        const char *start = p;
        for (;;) {
            char *end = NULL;
            if (*p < '0' || *p > '9' || n == sizeof dims / sizeof *dims)
                goto bad;
            errno = 0;
            unsigned long long d = strtoull(p, &end, 10);
            if (errno || d == 0 || d > SIZE_MAX) goto bad;
            dims[n++] = (size_t)d;
            p = end;
            if (*p != 'x' && *p != 'X') break;
            ++p;
        }
        if (n < 2) goto bad;
        if (a->nshapes == MAX_SHAPES)
            return cli_usage_error(cmd, "--shapes: at most %d shapes",
                                   MAX_SHAPES);
        bench_shape_arg *s = &a->shapes[a->nshapes++];
        s->outer = dims[0];
        s->cols = dims[1];
        s->inner = 1;
        s->nd = n > 2;
        snprintf(s->text, sizeof s->text, "%.*s", (int)(p - start), start);
        int fits = 1;
        for (size_t k = 2; k < n && fits; k++) {
            fits = dims[k] <= CLI_MAX_DIM / s->inner;
            if (fits) s->inner *= dims[k];
        }
        if (!fits || !cli_shape_fits(s->outer, s->cols, s->inner))
            return cli_usage_error(cmd, "--shapes: %.*s exceeds the limit "
                                   "of %zu rows (N x D1 x ..) and %zu "
                                   "classes", (int)(p - start), start,
                                   CLI_MAX_DIM, CLI_MAX_DIM);
        if (*p == '\0') return 0;
        if (*p != ',') goto bad;
        ++p;
    }
bad:
    return cli_usage_error(cmd, "--shapes: '%s' is not a list like "
                           "64x1000,16x21x128x128 (positive sizes, RxC or "
                           "NxCxD1[xD2..])", text);
}

static void set_shape(bench_shape_arg *s, size_t rows, size_t cols) {
    memset(s, 0, sizeof *s);
    s->outer = rows;
    s->cols = cols;
    s->inner = 1;
    snprintf(s->text, sizeof s->text, "%zux%zu", rows, cols);
}

static int parse_args(int argc, char **argv, bench_args *a) {
    memset(a, 0, sizeof *a);
    static const size_t dr[] = {65536, 4096, 1024, 256, 8},
                        dc[] = {10, 1000, 32000, 128256, 1048576};
    a->nshapes = 5;
    for (size_t s = 0; s < a->nshapes; s++)
        set_shape(&a->shapes[s], dr[s], dc[s]);
    a->repeat = 10;
    a->dtype = CLXENT_F32;
    for (int i = 0; i < OPS_BENCH_COUNT; i++) a->ops[i] = 1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) { help(); return -1; }
        if (strcmp(argv[i], "--json") == 0) { a->json = 1; continue; }
        if (strcmp(argv[i], "--no-host") == 0) { a->no_host = 1; continue; }
        if (strcmp(argv[i], "--explain") == 0) { a->explain = 1; continue; }
        if ((r = cli_option(cmd, argc, argv, &i, "--device", &v))) {
            if (r != 1) return r;
            a->device = v;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--svg", &v))) {
            if (r != 1) return r;
            a->svg = v;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--shard", &v))) {
            if (r != 1) return r;
            a->shard = v;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--shapes", &v))) {
            if (r != 1 || (r = parse_shapes(v, a))) return r;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--ops", &v))) {
            if (r != 1 || (r = parse_ops(v, a->ops))) return r;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--dtype", &v))) {
            if (r != 1 || (r = cli_parse_dtype(cmd, "--dtype", v, &a->dtype)))
                return r;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--repeat", &v))) {
            if (r != 1 || (r = cli_parse_size(cmd, "--repeat", v, &a->repeat)))
                return r;
            if (a->repeat < 1 || a->repeat > 100000)
                return cli_usage_error(cmd, "--repeat must be 1..100000");
        } else {
            return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
        }
    }
    return 0;
}

/* Random logits in [-4, 4), never 0, in storage type dtype; valid targets. */
static int make_inputs(size_t rows, size_t cols, clxent_dtype dtype,
                       cli_rng *rng, void **x, int32_t **y) {
    *x = NULL;
    *y = NULL;
    if (!cli_shape_fits(rows, cols, 1))
        return cli_fail(cmd, "%zux%zu is too large", rows, cols);
    size_t n = rows * cols;
    float *f = malloc(n * sizeof *f);
    *y = malloc(rows * sizeof **y);
    if (f && *y) {
        for (size_t i = 0; i < n; i++) {
            float v = (float)cli_rng_uniform(rng, -4.0, 4.0);
            f[i] = v == 0.0f ? 0.5f : v;
        }
        for (size_t r = 0; r < rows; r++)
            (*y)[r] = (int32_t)(cli_rng_next(rng) % cols);
        *x = cli_from_f32(f, n, dtype);
    }
    free(f);
    return *x ? 0 : cli_fail(cmd, "out of memory for %zux%zu", rows, cols);
}

typedef struct bench_run {
    const bench_args *a;
    clxent_context *dev, *host;
    bench_result *results;
    size_t count, step, steps;
    int wall, progress, host_skipped;
} bench_run;

static void progress(bench_run *run, const char *what, const char *shape) {
    if (!run->progress) return;
    fprintf(stderr, "\r\033[Kclxent bench: [%zu/%zu] %s %s", ++run->step,
            run->steps, what, shape);
    fflush(stderr);
}

/* The host backend's wall time for op, the best of `repeat` runs. */
static clxent_status host_time(bench_run *run, const ops_desc *op,
                               const bench_bufs *b, size_t repeat,
                               double *ms) {
    *ms = INFINITY;
    for (size_t i = 0; i < repeat; i++) {
        double start = bench_now_ms();
        clxent_status st = bench_enqueue(run->host, op, b);
        if (st == CLXENT_STATUS_OK) st = clxent_finish(run->host);
        if (st != CLXENT_STATUS_OK) return st;
        *ms = fmin(*ms, bench_now_ms() - start);
    }
    return CLXENT_STATUS_OK;
}

/* What the last operation ran: the trace between "-> " and " [tuning". */
static void explain(const clxent_context *ctx, char *kernels) {
    const char *t = clxent_context_last_trace(ctx);
    const char *from = strstr(t, "-> "), *to = strstr(t, " [tuning");
    size_t n = from && to && to > from ? (size_t)(to - from - 3) : 0;
    snprintf(kernels, 256, "%.*s", (int)(n < 255 ? n : 255),
             from ? from + 3 : "");
}

/* The buffers of shape sh on ctx: the matrix or the tensor form. */
static clxent_status bufs_for(clxent_context *ctx, const bench_shape_arg *sh,
                              const void *x, const int32_t *y,
                              clxent_dtype dtype, bench_bufs *b) {
    return sh->nd ? bench_bufs_make_nd(ctx, x, y, sh->outer, sh->cols,
                                       sh->inner, dtype, b)
                  : bench_bufs_make(ctx, x, y, sh->outer, sh->cols, dtype, b);
}

static int bench_shape(bench_run *run, const bench_shape_arg *sh) {
    const bench_args *a = run->a;
    /* An N-d shape has N*D1*.. rows of C classes: the same elements,
     * bytes and random inputs as that matrix, in PyTorch's order. */
    size_t rows = sh->outer * sh->inner, cols = sh->cols;
    size_t elem = clxent_dtype_size(a->dtype);
    cli_rng rng = cli_rng_seed(rows * 1000003u + cols);
    void *x;
    int32_t *y;
    int rc = make_inputs(rows, cols, a->dtype, &rng, &x, &y);
    bench_bufs b;
    memset(&b, 0, sizeof b); /* released on every path, made or not */
    clxent_status st = rc ? CLXENT_STATUS_OK
                          : bufs_for(run->dev, sh, x, y, a->dtype, &b);
    if (!rc && st != CLXENT_STATUS_OK)
        rc = cli_fail_status(cmd, run->dev, st, "allocating device buffers");
    double copy_med = 0, copy_min = 0;
    if (!rc) {
        progress(run, "copy", sh->text);
        st = bench_time(run->dev, &ops_table[OPS_COPY], &b, a->repeat,
                        &copy_med, &copy_min, &run->wall);
        if (st != CLXENT_STATUS_OK) rc = cli_fail_status(cmd, run->dev, st, "copy");
    }
    double copy_gbps =
        ops_bytes(&ops_table[OPS_COPY], rows, cols, elem) / copy_med * 1e-6;
    size_t first = run->count;
    for (int rank = 0; !rc && rank < OPS_BENCH_COUNT; rank++) {
        if (!a->ops[rank]) continue;
        const ops_desc *op = ops_bench(rank);
        bench_result *r = &run->results[run->count++];
        memset(r, 0, sizeof *r);
        r->op = op;
        r->rows = rows;
        r->cols = cols;
        snprintf(r->shape, sizeof r->shape, "%s", sh->text);
        r->dtype = a->dtype;
        r->host_ms = -1;
        progress(run, op->bench_name, sh->text);
        /* Trim first so the scratch the library holds afterwards is this
         * op's own need, not a larger earlier shape's. */
        st = clxent_context_trim(run->dev);
        if (st == CLXENT_STATUS_OK)
            st = bench_time(run->dev, op, &b, a->repeat, &r->median_ms,
                            &r->min_ms, &run->wall);
        if (st == CLXENT_STATUS_OK)
            st = clxent_context_memory(run->dev, &r->extra_bytes);
        if (st == CLXENT_STATUS_OK) explain(run->dev, r->kernels);
        if (st != CLXENT_STATUS_OK) {
            rc = cli_fail_status(cmd, run->dev, st, op->bench_name);
            break;
        }
        r->gelem_per_s = ops_elements(op, rows, cols) / r->median_ms * 1e-6;
        r->gbps = ops_bytes(op, rows, cols, elem) / r->median_ms * 1e-6;
        r->copy_gbps = copy_gbps;
        r->roofline = r->gbps / copy_gbps;
    }
    bench_bufs_release(&b);
    int host = !a->no_host && (double)rows * cols <= HOST_LIMIT;
    if (!rc && !host) run->host_skipped = 1;
    if (!rc && host) {
        progress(run, "host backend", sh->text);
        st = bufs_for(run->host, sh, x, y, a->dtype, &b);
        size_t repeat = (double)rows * cols < 4e6 ? 2 : 1;
        for (size_t i = first; st == CLXENT_STATUS_OK && i < run->count; i++)
            st = host_time(run, run->results[i].op, &b, repeat,
                           &run->results[i].host_ms);
        if (st != CLXENT_STATUS_OK)
            rc = cli_fail_status(cmd, run->host, st, "host backend");
        bench_bufs_release(&b);
    }
    free(x);
    free(y);
    return rc;
}

static void print_json(const bench_run *run, const clxent_device_info *info,
                       double copy_gbps) {
    printf("{\"device\": ");
    cli_device_json(stdout, info);
    printf(",\n \"timing\": \"%s\", \"repeat\": %zu, \"copy_gbps\": %.6g,\n",
           run->wall ? "wall" : "device", run->a->repeat, copy_gbps);
    if (run->a->explain) {
        printf(" \"tuning\": ");
        cli_json_string(stdout, clxent_context_tuning(run->dev));
        printf(",\n");
    }
    printf(" \"results\": [");
    for (size_t i = 0; i < run->count; i++) {
        const bench_result *r = &run->results[i];
        printf("%s\n  {\"op\": \"%s\", \"shape\": \"%s\", \"rows\": %zu, "
               "\"cols\": %zu, "
               "\"dtype\": \"%s\", \"median_ms\": %.6g, \"min_ms\": %.6g, "
               "\"gelem_per_s\": %.6g, \"gbps\": %.6g, \"copy_gbps\": %.6g, "
               "\"roofline_fraction\": %.4f, \"extra_bytes\": %zu, "
               "\"host_ms\": ",
               i ? "," : "", r->op->bench_name, r->shape, r->rows, r->cols,
               clxent_dtype_name(r->dtype), r->median_ms, r->min_ms,
               r->gelem_per_s, r->gbps, r->copy_gbps, r->roofline,
               r->extra_bytes);
        if (r->host_ms < 0) printf("null");
        else printf("%.6g", r->host_ms);
        if (run->a->explain) {
            printf(", \"kernels\": ");
            cli_json_string(stdout, r->kernels);
        }
        printf("}");
    }
    printf("\n]}\n");
}

static void print_table(const bench_run *run, const clxent_device_info *info) {
    printf("clxent bench: %s (%s), %s, %zu repeats, %s\n", info->spec,
           info->name, clxent_dtype_name(run->a->dtype), run->a->repeat,
           run->wall ? "wall-clock time (no profiling events on this backend)"
                     : "device time from profiling events");
    printf("%-12s %-13s %9s %9s %8s %8s %8s %6s %6s %9s\n", "op", "shape",
           "median ms", "min ms", "Gelem/s", "GB/s", "copyGB/s", "roof",
           "extra", "host ms");
    for (size_t i = 0; i < run->count; i++) {
        const bench_result *r = &run->results[i];
        char host[24] = "skipped";
        char extra[24];
        if (r->host_ms >= 0) snprintf(host, sizeof host, "%.2f", r->host_ms);
        if (r->extra_bytes < 10240)
            snprintf(extra, sizeof extra, "%zuB", r->extra_bytes);
        else
            snprintf(extra, sizeof extra, "%zuK", r->extra_bytes / 1024);
        printf("%-12s %-13s %9.3f %9.3f %8.3f %8.2f %8.2f %5.0f%% %6s %9s",
               r->op->bench_name, r->shape, r->median_ms, r->min_ms,
               r->gelem_per_s, r->gbps, r->copy_gbps, 100 * r->roofline,
               extra, host);
        if (run->a->explain) printf("  %s", r->kernels);
        printf("\n");
    }
    printf("GB/s counts the minimum bytes moved; roof = GB/s over clxent_copy "
           "of the same bytes.\nextra: device memory the library held for "
           "the op beyond inputs and outputs\n(clxent_context_memory after a "
           "trim; O(rows), never O(rows x cols)).%s\n",
           run->host_skipped ? "\nhost ms skipped (--no-host, or over 50M "
                               "elements)." : "");
    if (run->a->explain)
        printf("kernels: what each op ran, with the strategy row and its "
               "parameters;\ntuning: %s\n", clxent_context_tuning(run->dev));
}

int clxent_cmd_bench(int argc, char **argv) {
    bench_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (a.shard) {
        for (int i = 0; i < OPS_BENCH_COUNT; i++)
            if (a.ops[i] && strcmp(ops_bench(i)->bench_name, "fused") != 0)
                return cli_usage_error(cmd, "--shard times the fused loss "
                                       "only: add --ops fused");
        if (a.svg)
            return cli_usage_error(cmd, "--svg does not apply to --shard");
        if (a.no_host)
            return cli_usage_error(cmd, "--no-host does not apply to "
                                   "--shard (it times no host backend)");
        if (a.explain)
            return cli_usage_error(cmd, "--explain does not apply to "
                                   "--shard");
        int V, B;
        if ((rc = shard_parse(cmd, a.shard, &V, &B))) return rc;
        return bench_sharded(a.shard, a.device, a.shapes, a.nshapes,
                             a.repeat, a.dtype, a.json);
    }
    if (a.svg && (rc = cli_check_writable(cmd, "--svg", a.svg))) return rc;
    bench_run run;
    memset(&run, 0, sizeof run);
    run.a = &a;
    run.progress = isatty(2);
    size_t nops = 0;
    for (int i = 0; i < OPS_BENCH_COUNT; i++) nops += (size_t)a.ops[i];
    run.steps = a.nshapes * (nops + 2);
    run.results = calloc(a.nshapes * OPS_BENCH_COUNT, sizeof *run.results);
    if (!run.results) return cli_fail(cmd, "out of memory");
    if ((rc = cli_open_context(cmd, a.device, &run.dev)) ||
        (rc = cli_open_context(cmd, "host", &run.host)))
        goto out;
    for (size_t s = 0; !rc && s < a.nshapes; s++)
        rc = bench_shape(&run, &a.shapes[s]);
    if (run.progress) fprintf(stderr, "\r\033[K");
    if (rc) goto out;
    clxent_device_info info;
    memset(&info, 0, sizeof info);
    clxent_context_info(run.dev, &info);
    double copy_gbps = 0;
    for (size_t i = 0; i < run.count; i++)
        copy_gbps = fmax(copy_gbps, run.results[i].copy_gbps);
    if (a.json) print_json(&run, &info, copy_gbps);
    else print_table(&run, &info);
    if (a.svg) {
        char title[256], error[512];
        snprintf(title, sizeof title, "clxent %s on %s (%s)",
                 clxent_dtype_name(a.dtype), info.name, info.spec);
        if (bench_svg(a.svg, title, run.results, run.count, copy_gbps, error,
                      sizeof error) != 0)
            rc = cli_fail(cmd, "%s", error);
        else if (!a.json)
            printf("plot written to %s\n", a.svg);
    }
out:
    clxent_context_destroy(run.dev);
    clxent_context_destroy(run.host);
    free(run.results);
    return rc;
}
