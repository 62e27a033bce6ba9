/* clxent check: the chosen device against the host reference backend over
 * a built-in grid of operations, storage types, option families and
 * shapes. Tolerances (errors relative to max(1, |host value|)):
 *   loss, lse and row statistics (f32 outputs from identical inputs):
 *     1e-6, the accuracy docs/semantics.md promises against float64;
 *   matrix outputs (gradients, softmax, log-softmax): 1e-6 for f32; for
 *     f16/bf16 one unit in the last place of the stored type (2^-10,
 *     2^-7) plus 1e-6: both sides round a value that is right to 1e-6,
 *     and a rounding boundary may fall between them;
 *   copy: 0, conversion is exact (round to nearest even on both). */
#include "check.h"
#include "commands.h"

#include <math.h>
#include <string.h>

static const char *cmd = "check";

static void help(void) {
    printf("Usage: clxent check [--device SPEC] [--quick]\n\n"
           "Compares every operation of the device against the host "
           "reference backend\nover a built-in grid: every storage type "
           "(f32, f16, bf16), every option\nfamily (plain, sum, none, "
           "weights, smoothing, ignore_index, z-loss, probs,\nall together) "
           "and shapes with C=1, odd C, row stride > C, element offsets\n"
           "and a split row (2x70000). --quick uses small shapes only, "
           "each case once\n(for Oclgrind). Errors are relative to "
           "max(1, |reference|); tolerances:\n  loss/lse/row statistics "
           "1e-6; matrix outputs 1e-6 (f32), 2^-10+1e-6 (f16),\n  "
           "2^-7+1e-6 (bf16); copy exact. Exits 1 when any case exceeds "
           "its tolerance.\n");
}

static const check_shape quick_shapes[] = {
    {1, 1, 1, 0}, {5, 7, 7, 0}, {3, 33, 40, 3}, {4, 300, 300, 0}};
static const check_shape full_shapes[] = {
    {1, 1, 1, 0},      {5, 7, 7, 0},        {3, 33, 40, 3},
    {64, 1000, 1000, 0}, {8, 4097, 4100, 1}, {2, 70000, 70000, 0}};
static const clxent_dtype dtypes[] = {CLXENT_F32, CLXENT_F16, CLXENT_BF16};

/* max over i of |got - want| / max(1, |want|); NaN matches NaN and an
 * infinity the same infinity, any other disagreement is infinite. */
static double max_error(const float *got, const float *want, size_t n,
                        size_t *at) {
    double worst = 0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], e;
        if (isnan(w) || isnan(g)) e = isnan(w) && isnan(g) ? 0 : INFINITY;
        else if (isinf(w) || isinf(g)) e = g == w ? 0 : INFINITY;
        else e = fabs(g - w) / fmax(1.0, fabs(w));
        if (e > worst) {
            worst = e;
            *at = i;
        }
    }
    return worst;
}

static double mat_tolerance(const check_case *c) {
    if (c->op == OPS_COPY) return 0;
    switch (c->dtype) {
    case CLXENT_F16: return 0x1p-10 + 1e-6;
    case CLXENT_BF16: return 0x1p-7 + 1e-6;
    default: return 1e-6;
    }
}

typedef struct check_totals { int cases, failed; } check_totals;

/* Runs one case on both contexts and prints its table row. */
static int check_one(clxent_context *dev, clxent_context *host,
                     const check_case *c, unsigned long long seed,
                     check_totals *t) {
    check_inputs in;
    check_outputs d, h;
    const char *what = "";
    char shape[64], options[40];
    const check_shape *s = &c->shape;
    snprintf(shape, sizeof shape, "%zux%zu", s->rows, s->cols);
    if (s->stride != s->cols || s->offset)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
                 " ld%zu+%zu", s->stride, s->offset);
    snprintf(options, sizeof options, "%s%s", check_family_name(c->family),
             c->family != CF_NA && c->family != CF_PROBS &&
                     c->idx_dtype == CLXENT_I64 ? " i64" : "");
    clxent_status st = check_inputs_make(host, c, seed, &in, &what);
    if (st != CLXENT_STATUS_OK) {
        check_inputs_free(&in);
        return cli_fail_status(cmd, host, st, what);
    }
    if ((st = check_run(host, c, &in, &h, &what)) != CLXENT_STATUS_OK) {
        check_inputs_free(&in);
        return cli_fail_status(cmd, host, st, what);
    }
    st = check_run(dev, c, &in, &d, &what);
    double vec_err = 0, mat_err = 0, mat_tol = mat_tolerance(c);
    size_t vec_at = 0, mat_at = 0;
    int ok = st == CLXENT_STATUS_OK;
    if (ok) {
        vec_err = max_error(d.vec, h.vec, h.nvec, &vec_at);
        mat_err = h.mat ? max_error(d.mat, h.mat, h.nmat, &mat_at) : 0;
        ok = vec_err <= 1e-6 && mat_err <= mat_tol && (!h.mat || d.padding_ok);
    }
    printf("%-11s %-4s %-16s %-17s ", ops_table[c->op].name,
           clxent_dtype_name(c->dtype), options, shape);
    if (st != CLXENT_STATUS_OK)
        printf("error: %s: %s\n", clxent_status_name(st),
               clxent_context_message(dev));
    else {
        char ve[16] = "-", me[16] = "-";
        if (h.nvec) snprintf(ve, sizeof ve, "%9.2e", vec_err);
        if (h.mat) snprintf(me, sizeof me, "%9.2e", mat_err);
        printf("%9s %9s  %.0e/%-8.2g %s%s\n", ve, me, 1e-6, mat_tol,
               ok ? "ok" : "FAIL",
               h.mat && !d.padding_ok ? " (wrote outside the matrix)" : "");
        /* Where it went wrong: vec holds the loss first, then per-row
         * values (lse or row statistic). */
        if (vec_err > 1e-6)
            printf("    worst loss/vector value: element %zu of %zu: device "
                   "%.9g, host %.9g\n", vec_at, h.nvec, d.vec[vec_at],
                   h.vec[vec_at]);
        if (h.mat && mat_err > mat_tol)
            printf("    worst matrix value: row %zu col %zu: device %.9g, "
                   "host %.9g\n", mat_at / s->cols, mat_at % s->cols,
                   d.mat[mat_at], h.mat[mat_at]);
    }
    fflush(stdout);
    t->cases++;
    t->failed += !ok;
    check_outputs_free(&d);
    check_outputs_free(&h);
    check_inputs_free(&in);
    return 0;
}

static int run_grid(clxent_context *dev, clxent_context *host, int quick,
                    check_totals *t) {
    const check_shape *shapes = quick ? quick_shapes : full_shapes;
    size_t nshapes = quick ? sizeof quick_shapes / sizeof quick_shapes[0]
                           : sizeof full_shapes / sizeof full_shapes[0];
    unsigned long long k = 0;
    for (int op = 0; op < OPS_COUNT; op++)
        for (size_t di = 0; di < 3; di++)
            for (int f = 0; f < CF_N_FAMILIES; f++) {
                if (!check_family_applies(&ops_table[op], (check_family)f))
                    continue;
                /* --quick: each (op, dtype, family) once, the shapes taken
                 * in turn so each is used; full: every shape. */
                for (size_t si = 0; si < nshapes; si++) {
                    if (quick && si != k % nshapes) continue;
                    check_case c = {(ops_id)op, dtypes[di],
                                    (k / nshapes) % 2 ? CLXENT_I64 : CLXENT_I32,
                                    (check_family)f, shapes[si]};
                    int rc = check_one(dev, host, &c, 1000 + k * 7919 + si, t);
                    if (rc) return rc;
                }
                k++;
            }
    return 0;
}

int clxent_cmd_check(int argc, char **argv) {
    const char *spec = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) { help(); return CLI_OK; }
        if (strcmp(argv[i], "--quick") == 0) { quick = 1; continue; }
        if ((r = cli_option(cmd, argc, argv, &i, "--device", &spec))) {
            if (r != 1) return r;
            continue;
        }
        return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
    }
    clxent_context *dev = NULL, *host = NULL;
    clxent_device_info info;
    int rc = cli_open_pair(cmd, spec, &dev, &host, &info);
    if (rc) return rc;
    printf("clxent check: %s (%s) against the host reference%s\n", info.spec,
           info.name, quick ? ", quick grid" : "");
    printf("errors relative to max(1,|ref|); loss = loss/lse/row statistic, "
           "grad = matrix output\n");
    printf("%-11s %-4s %-16s %-17s %9s %9s  %-14s %s\n", "op", "type",
           "options", "shape", "loss err", "grad err", "tol loss/grad", "ok");
    check_totals t = {0, 0};
    rc = run_grid(dev, host, quick, &t);
    if (!rc) {
        printf("%d cases, %d failed\n", t.cases, t.failed);
        if (t.failed)
            rc = cli_fail(cmd, "%d of %d cases exceed their tolerance on %s",
                          t.failed, t.cases, info.spec);
    }
    clxent_context_destroy(dev);
    clxent_context_destroy(host);
    return rc;
}
