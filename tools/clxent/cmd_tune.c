/* clxent tune: measures, on one device, the kernel parameters and the
 * thresholds between the strategies of the table (host/src/opencl/plan/
 * strategy.c) and writes a tuning file the library reads (docs/tuning.md).
 * Every configuration's output is compared with the host reference before
 * it is timed, so a fast wrong kernel is never chosen. Progress goes to
 * stderr; the run stops measuring when its time budget is spent. */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include "bench.h"
#include "commands.h"
#include "tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *cmd = "tune";

static void help(void) {
    printf(
        "Usage: clxent tune [--device SPEC] [--ops OP[,OP...]] "
        "[--shapes NxC[,NxC...]]\n"
        "                   [--dtype f32|f16|bf16] [--out FILE] [--budget "
        "SECONDS]\n"
        "                   [--name NAME] [--match KEY[,KEY...]] "
        "[--elements N]\n"
        "                   [--repeat K]\n\n"
        "Measures the strategy thresholds (which kernel runs for which C) "
        "and the kernel\nparameters of the device's mapping, each "
        "configuration first checked against\nthe host reference, and "
        "writes them as a tuning file (default\nclxent-tuning.txt; load it "
        "with CLXENT_TUNING_FILE=FILE). --ops limits the\nsteps to those "
        "operations (default: all): ");
    for (int rank = 0; rank < OPS_BENCH_COUNT; rank++)
        printf("%s%s", rank ? "," : "", ops_bench(rank)->bench_name);
    printf(".\n--shapes: the shapes of the kernel-parameter steps and of the "
           "before/after table\n(default 65536x10,65536x100,16384x256,"
           "4096x1000,1024x32000,256x128256).\n--elements: rows x C of a "
           "threshold step's shapes (default 2097152).\n--budget: seconds "
           "(default 300, may be fractional); steps that do not fit are skipped\nand said.\n"
           "--match: the keys that select the device in the file "
           "(platform, vendor,\ndevice, driver, class; default all).\n");
}

static int parse_ops(const char *text, unsigned *mask) {
    *mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int i = 0; i < OPS_BENCH_COUNT; i++)
            if (strcmp(tok, ops_bench(i)->bench_name) == 0) {
                *mask |= 1u << ops_bench(i)->id;
                found = 1;
            }
        if (!found) return cli_usage_error(cmd, "--ops: unknown op '%s'", tok);
    }
    return *mask ? 0 : cli_usage_error(cmd, "--ops: no op given");
}

static int parse_match(const char *text, unsigned *mask) {
    static const char *const keys[] = {"platform", "vendor", "device",
                                       "driver", "class"};
    *mask = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        size_t k = 0;
        while (k < 5 && strcmp(tok, keys[k]) != 0) ++k;
        if (k == 5)
            return cli_usage_error(cmd, "--match: unknown key '%s' (platform, "
                                        "vendor, device, driver, class)",
                                   tok);
        *mask |= 1u << k;
    }
    return *mask ? 0 : cli_usage_error(cmd, "--match: no key given "
                                       "(platform, vendor, device, driver, "
                                       "class)");
}

static int parse_args(int argc, char **argv, tune_args *a) {
    memset(a, 0, sizeof *a);
    static const size_t dr[] = {65536, 65536, 16384, 4096, 1024, 256},
                        dc[] = {10, 100, 256, 1000, 32000, 128256};
    a->nshapes = 6;
    memcpy(a->rows, dr, sizeof dr);
    memcpy(a->cols, dc, sizeof dc);
    a->dtype = CLXENT_F32;
    a->out = "clxent-tuning.txt";
    a->budget = 300;
    a->elements = 1u << 21;
    a->repeat = 5;
    a->match = 0x1f;
    a->ops = ~0u;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            help();
            return -1;
        }
        if ((r = cli_option(cmd, argc, argv, &i, "--device", &v))) {
            if (r != 1) return r;
            a->device = v;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--out", &v))) {
            if (r != 1) return r;
            a->out = v;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--name", &v))) {
            if (r != 1) return r;
            a->name = v;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--shapes", &v))) {
            if (r != 1 || (r = cli_parse_shapes(cmd, "--shapes", v, a->rows,
                                                a->cols, TUNE_MAX_SHAPES,
                                                &a->nshapes)))
                return r;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--ops", &v))) {
            if (r != 1 || (r = parse_ops(v, &a->ops))) return r;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--match", &v))) {
            if (r != 1 || (r = parse_match(v, &a->match))) return r;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--dtype", &v))) {
            if (r != 1 || (r = cli_parse_dtype(cmd, "--dtype", v, &a->dtype)))
                return r;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--budget", &v))) {
            float budget = 0;
            if (r != 1 ||
                (r = cli_parse_float(cmd, "--budget", v, &budget)))
                return r;
            if (!(budget > 0))
                return cli_usage_error(cmd, "--budget must be positive");
            a->budget = budget;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--elements", &v))) {
            if (r != 1 ||
                (r = cli_parse_size(cmd, "--elements", v, &a->elements)))
                return r;
            if (a->elements < 1024 || a->elements > (1u << 28))
                return cli_usage_error(cmd, "--elements must be 1024..2^28");
        } else if ((r = cli_option(cmd, argc, argv, &i, "--repeat", &v))) {
            if (r != 1 || (r = cli_parse_size(cmd, "--repeat", v, &a->repeat)))
                return r;
            if (a->repeat < 1 || a->repeat > 1000)
                return cli_usage_error(cmd, "--repeat must be 1..1000");
        } else {
            return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
        }
    }
    return 0;
}

#define MAX_PARAMS 64

/* Every parameter of the context (a snapshot), and back. */
static size_t get_params(clxent_context *ctx, long long *v) {
    size_t n = 0;
    const char *name;
    while (n < MAX_PARAMS && (name = clxent_param_name(n, NULL)))
        clxent_context_get_param(ctx, name, &v[n++]);
    return n;
}

static void set_params(clxent_context *ctx, const long long *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        clxent_context_set_param(ctx, clxent_param_name(i, NULL), v[i]);
}

/* The before/after table: every shape of --shapes for every tuned op.
 * First (after 0) the parameters as resolved, which also times what the
 * final table will cost; last (after 1) the resolved and the tuned ones
 * in turn on each row, so that both see the machine in the same state. */
static int before_after(tune_run *run, int after) {
    const tune_args *a = run->a;
    long long tuned[MAX_PARAMS];
    size_t np = get_params(run->dev, tuned);
    int rc = 0;
    run->table_count = 0;
    for (int rank = 0; !rc && rank < OPS_BENCH_COUNT; rank++) {
        const ops_desc *op = ops_bench(rank);
        if (!(a->ops & (1u << op->id)) || op->id == OPS_NLL) continue;
        for (size_t s = 0; !rc && s < a->nshapes; s++) {
            tune_row *row = &run->table[run->table_count++];
            memset(row, 0, sizeof *row);
            row->op = op;
            row->rows = a->rows[s];
            row->cols = a->cols[s];
            tune_point p = {op, a->dtype, row->rows, row->cols, 0};
            clxent_context_reset_params(run->dev);
            rc = tune_measure(run, &p, &row->before_ms, NULL,
                              row->kernels_before);
            if (!rc && after) {
                set_params(run->dev, tuned, np);
                rc = tune_measure(run, &p, &row->after_ms, NULL,
                                  row->kernels_after);
            }
        }
    }
    set_params(run->dev, tuned, np);
    return rc;
}

static void print_table(const tune_run *run) {
    printf("%-11s %-13s %10s %10s %7s  %s\n", "op", "shape", "before ms",
           "after ms", "speedup", "kernels before -> after");
    for (size_t i = 0; i < run->table_count; i++) {
        const tune_row *r = &run->table[i];
        char shape[40];
        snprintf(shape, sizeof shape, "%zux%zu", r->rows, r->cols);
        printf("%-11s %-13s %10.3f %10.3f %6.2fx  %s", r->op->bench_name,
               shape, r->before_ms, r->after_ms,
               r->after_ms > 0 ? r->before_ms / r->after_ms : 0.0,
               r->kernels_before);
        if (strcmp(r->kernels_before, r->kernels_after) != 0)
            printf(" -> %s", r->kernels_after);
        printf("\n");
    }
}

int clxent_cmd_tune(int argc, char **argv) {
    tune_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if ((rc = cli_check_writable(cmd, "--out", a.out))) return rc;
    tune_run run;
    memset(&run, 0, sizeof run);
    run.a = &a;
    run.start_ms = bench_now_ms();
    if ((rc = cli_open_context(cmd, a.device, &run.dev)) ||
        (rc = cli_open_context(cmd, "host", &run.host)))
        goto out;
    clxent_device_info info;
    memset(&info, 0, sizeof info);
    clxent_context_info(run.dev, &info);
    if (info.backend == CLXENT_BACKEND_HOST) {
        rc = cli_fail(cmd, "the host backend has nothing to tune; choose an "
                           "OpenCL device with --device");
        goto out;
    }
    fprintf(stderr, "clxent tune: %s (%s, %s), budget %gs, tuning so far: "
                    "%s\n",
            info.spec, info.name, info.platform, a.budget,
            clxent_context_tuning(run.dev));
    rc = before_after(&run, 0);
    if (!rc) rc = tune_steps(&run);
    if (!rc) rc = before_after(&run, 1);
    if (rc) goto out;
    char note[512];
    snprintf(note, sizeof note,
             "clxent tune --device %s --budget %g --elements %zu --dtype %s "
             "(%zu of %zu steps, %.0f s)",
             info.spec, a.budget, a.elements, clxent_dtype_name(a.dtype),
             run.steps_done, run.steps_total,
             (bench_now_ms() - run.start_ms) / 1e3);
    clxent_status st = clxent_context_save_tuning(run.dev, a.out, a.name, note);
    if (st == CLXENT_STATUS_OK && tune_keep_match(a.out, a.match) != 0)
        st = CLXENT_STATUS_IO_ERROR;
    if (st != CLXENT_STATUS_OK) {
        rc = cli_fail_status(cmd, run.dev, st, "writing the tuning file");
        goto out;
    }
    printf("clxent tune: %s (%s), %s, %zu of %zu steps in %.0f s (budget "
           "%g s)\n",
           info.spec, info.name, clxent_dtype_name(a.dtype), run.steps_done,
           run.steps_total, (bench_now_ms() - run.start_ms) / 1e3, a.budget);
    for (size_t i = 0; i < run.changes; i++) printf("  %s\n", run.change[i]);
    print_table(&run);
    printf("wrote %s (use it with CLXENT_TUNING_FILE=%s)\n", a.out, a.out);
out:
    tune_free(&run);
    clxent_context_destroy(run.dev);
    clxent_context_destroy(run.host);
    return rc;
}
