/* The clxent subcommands called as functions: `run` on .npy files on the
 * host and on the device (against a float64 reference and each other; an
 * N-d input against its transposed matrix), usage errors (exit 2), bad
 * files and shapes (exit 1, with the message they give), devices, demo
 * and check. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mkfifo, kill */
#include "fixtures.h"
#include "commands.h"
#include "npy.h"

#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The library's fault-injection seam (host/src/core/internal.h): the k-th
 * OpenCL call from now fails; 0 disarms. */
void clx_fault_arm(long k);
long clx_fault_calls(void);

#define N 6
#define C 37

static char dir[64];

static const char *path(const char *name) {
    static char buf[32][192]; /* a call names up to 32 files */
    static int next;
    char *p = buf[next++ % 32];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static int call(int (*fn)(int, char **), const char *const *args) {
    char *argv[40];
    int argc = 0;
    while (args[argc]) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    fflush(stdout);
    return fn(argc, argv);
}
#define CALL(fn, ...) call(fn, (const char *const[]){__VA_ARGS__, NULL})

/* Runs fn with stderr going into err (NUL-terminated). */
static int call_err(char *err, size_t size, int (*fn)(int, char **),
                    const char *const *args) {
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), 2);
    int rc = call(fn, args);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(err, 1, size - 1, tmp);
    err[n] = '\0';
    fclose(tmp);
    return rc;
}

static float logits[N * C];
static int32_t targets[N];

/* An (ND, NC, NK) input, its (ND*NK, NC) transpose, and their targets:
 * row (n, k) of the first is row n*NK + k of the second. */
#define ND 2
#define NC 5
#define NK 3
static float x3[ND * NC * NK];
static int64_t y3[ND * NK];

static int write_nd_files(void) {
    fx_rng rng = fx_rng_seed(11);
    fx_fill_uniform(&rng, x3, ND * NC * NK, -3, 3);
    float x2[ND * NK * NC];
    double x3d[ND * NC * NK];
    int64_t bad[ND * NK];
    for (int n = 0; n < ND; n++)
        for (int k = 0; k < NK; k++) {
            y3[n * NK + k] = (int64_t)(fx_next(&rng) % NC);
            for (int c = 0; c < NC; c++)
                x2[(n * NK + k) * NC + c] = x3[(n * NC + c) * NK + k];
        }
    y3[1] = -100;
    for (int i = 0; i < ND * NK; i++) bad[i] = y3[i];
    for (int i = 0; i < ND * NC * NK; i++) x3d[i] = x3[i];
    bad[1 * NK + 2] = NC; /* at (1, 2) */
    size_t s3[3] = {ND, NC, NK}, sy3[2] = {ND, NK}, s2[2] = {ND * NK, NC},
           sy2[1] = {ND * NK};
    char err[256];
    int rc = npy_write(path("x3.npy"), NPY_F32, 3, s3, x3, err, sizeof err) |
             npy_write(path("x3d.npy"), NPY_F64, 3, s3, x3d, err, sizeof err) |
             npy_write(path("y3.npy"), NPY_I64, 2, sy3, y3, err, sizeof err) |
             npy_write(path("y3bad.npy"), NPY_I64, 2, sy3, bad, err, sizeof err) |
             npy_write(path("x2.npy"), NPY_F32, 2, s2, x2, err, sizeof err) |
             npy_write(path("y2.npy"), NPY_I64, 1, sy2, y3, err, sizeof err) |
             npy_write(path("x0.npy"), NPY_F32, 0, NULL, x3, err, sizeof err);
    /* npy_write stops at 8 dimensions: the 9-d file by hand. */
    FILE *f = fopen(path("x9.npy"), "wb");
    if (!f) return -1;
    const char *h = "{'descr': '<f4', 'fortran_order': False, "
                    "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 2), }";
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                              (unsigned char)strlen(h), 0};
    fwrite(head, 1, 10, f);
    fwrite(h, 1, strlen(h), f);
    fwrite(x3, 4, 2, f);
    fclose(f);
    return rc;
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/clxent_cli_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    fx_rng rng = fx_rng_seed(7);
    fx_fill_uniform(&rng, logits, N * C, -4, 4);
    for (int r = 0; r < N; r++) targets[r] = (int32_t)(fx_next(&rng) % C);
    targets[2] = -100; /* the default ignore_index */
    float probs[N * C], weights[C];
    for (int r = 0; r < N; r++) {
        double s = 0;
        for (int c = 0; c < C; c++) s += probs[r * C + c] = (float)fx_uniform(&rng, 0, 1);
        for (int c = 0; c < C; c++) probs[r * C + c] = (float)(probs[r * C + c] / s);
    }
    fx_fill_uniform(&rng, weights, C, 0.5f, 1.5f);
    int32_t bad[N] = {0, 1, 2, 3, C, 5};
    size_t sx[2] = {N, C}, sy[1] = {N}, sw[1] = {C}, sbad[2] = {N, 1};
    char err[256];
    int rc = npy_write(path("x.npy"), NPY_F32, 2, sx, logits, err, sizeof err) |
             npy_write(path("y.npy"), NPY_I32, 1, sy, targets, err, sizeof err) |
             npy_write(path("p.npy"), NPY_F32, 2, sx, probs, err, sizeof err) |
             npy_write(path("w.npy"), NPY_F32, 1, sw, weights, err, sizeof err) |
             npy_write(path("ybad.npy"), NPY_I32, 1, sy, bad, err, sizeof err) |
             npy_write(path("yfloat.npy"), NPY_F32, 1, sy, logits, err, sizeof err) |
             npy_write(path("yshape.npy"), NPY_I32, 2, sbad, targets, err, sizeof err) |
             npy_write(path("w_short.npy"), NPY_F32, 1, sy, weights, err, sizeof err);
    rc |= write_nd_files();
    FILE *f = fopen(path("junk.npy"), "wb");
    if (!f) return -1;
    fputs("\x93NUMPY\x01\x00\xff\x00{'descr'", f);
    fclose(f);
    /* Values that leave float32's or float16's range when stored, and
     * NaN and inf, which are data. */
    double big[N * C], odd[N * C];
    float over16[N * C];
    for (int i = 0; i < N * C; i++)
        big[i] = odd[i] = over16[i] = logits[i];
    big[1 * C + 2] = 1e39;
    odd[0] = INFINITY;
    odd[1] = NAN;
    over16[3 * C + 4] = 70000.0f;
    rc |= npy_write(path("xbig.npy"), NPY_F64, 2, sx, big, err, sizeof err) |
          npy_write(path("xodd.npy"), NPY_F64, 2, sx, odd, err, sizeof err) |
          npy_write(path("x16.npy"), NPY_F32, 2, sx, over16, err, sizeof err);
    /* One-byte types, which numpy writes with byte order '|'. */
    for (int k = 0; k < 2; k++) {
        char h[128];
        snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, "
                 "'shape': (%d,), }", k ? "|u1" : "|b1", N);
        f = fopen(path(k ? "u1.npy" : "b1.npy"), "wb");
        if (!f) return -1;
        unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                  (unsigned char)strlen(h), 0};
        fwrite(head, 1, 10, f);
        fwrite(h, 1, strlen(h), f);
        fwrite("\1\0\1\0\1\0", 1, N, f);
        fclose(f);
    }
    return rc;
}

static int teardown(void **state) {
    (void)state;
    const char *names[] = {"x.npy", "y.npy", "p.npy", "w.npy", "ybad.npy",
                           "yfloat.npy", "yshape.npy", "w_short.npy",
                           "junk.npy", "loss.npy", "grad.npy", "lse.npy",
                           "plot.svg", "x3.npy", "y3.npy", "x2.npy", "y2.npy",
                           "x3d.npy", "y3bad.npy", "x9.npy", "x0.npy",
                           "out.npy", "loss2.npy", "grad2.npy", "lse2.npy",
                           "out2.npy", "xbig.npy", "xodd.npy", "x16.npy",
                           "b1.npy", "u1.npy", "keep.npy", "l3.npy",
                           "fifo.npy", "cut.npy"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(path(names[i]));
    rmdir(dir);
    return 0;
}

static float *load(const char *name, size_t expect_count) {
    npy_array a;
    char err[256];
    if (npy_read(path(name), &a, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(a.dtype, NPY_F32);
    assert_int_equal(a.count, expect_count);
    return a.data;
}

/* Mean cross-entropy over valid rows and its gradient, in double. */
static void reference(double *loss, double *grad, double *lse) {
    double total = 0;
    int valid = 0;
    for (int r = 0; r < N; r++) {
        const float *x = logits + r * C;
        double m = x[0], s = 0;
        for (int c = 1; c < C; c++) m = fmax(m, x[c]);
        for (int c = 0; c < C; c++) s += exp(x[c] - m);
        lse[r] = m + log(s);
        if (targets[r] == -100) continue;
        valid++;
        total += lse[r] - x[targets[r]];
    }
    *loss = total / valid;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++)
            grad[r * C + c] = targets[r] == -100 ? 0.0
                : (exp(logits[r * C + c] - lse[r]) - (c == targets[r])) / valid;
}

static void run_plain_on(const char *spec) {
    assert_int_equal(CLI_OK, CALL(clxent_cmd_run, "run", "--device", spec,
                                  "--logits", path("x.npy"), "--targets",
                                  path("y.npy"), "--loss-out", path("loss.npy"),
                                  "--grad-out", path("grad.npy"), "--lse-out",
                                  path("lse.npy")));
    double loss, grad[N * C], lse[N];
    reference(&loss, grad, lse);
    float *l = load("loss.npy", 1), *g = load("grad.npy", N * C),
          *s = load("lse.npy", N);
    fx_assert_close(l, &loss, 1, 1e-6, 1e-6, "loss");
    fx_assert_close(g, grad, N * C, 1e-6, 0, "grad");
    fx_assert_close(s, lse, N, 1e-6, 1e-6, "lse");
    free(l); free(g); free(s);
}

static void test_run_host(void **state) {
    (void)state;
    run_plain_on("host");
}

static void test_run_device(void **state) {
    (void)state;
    const char *spec = fx_device_spec();
    if (!spec) return;
    run_plain_on(spec);
}

/* Every option at once, every dtype, and probabilities: the device's
 * outputs against the host's. */
static void test_run_options_device_vs_host(void **state) {
    (void)state;
    const char *spec = fx_device_spec();
    if (!spec) return;
    const char *dtypes[] = {"f32", "f16", "bf16"};
    for (int k = 0; k < 6; k++) {
        const char *dtype = dtypes[k % 3], *red = k < 3 ? "none" : "sum";
        float *out[2][2];
        for (int side = 0; side < 2; side++) {
            int rc = k % 2
                ? CALL(clxent_cmd_run, "run", "--device", side ? spec : "host",
                       "--logits", path("x.npy"), "--probs", path("p.npy"),
                       "--weights", path("w.npy"), "--reduction", red,
                       "--label-smoothing", "0.2", "--z-loss", "1e-3",
                       "--grad-scale", "0.5", "--dtype", dtype, "--loss-out",
                       path("loss.npy"), "--grad-out", path("grad.npy"))
                : CALL(clxent_cmd_run, "run", "--device", side ? spec : "host",
                       "--logits", path("x.npy"), "--targets", path("y.npy"),
                       "--weights", path("w.npy"), "--reduction", red,
                       "--ignore-index", "-100", "--label-smoothing", "0.1",
                       "--z-loss", "1e-2", "--grad-scale", "2", "--dtype",
                       dtype, "--loss-out", path("loss.npy"), "--grad-out",
                       path("grad.npy"));
            assert_int_equal(rc, CLI_OK);
            out[side][0] = load("loss.npy", k < 3 ? N : 1);
            out[side][1] = load("grad.npy", N * C);
        }
        double want[N * C];
        size_t nl = k < 3 ? N : 1;
        for (size_t i = 0; i < nl; i++) want[i] = out[0][0][i];
        fx_assert_close(out[1][0], want, nl, 1e-6, 1e-6, "loss");
        double ulp = k % 3 == 0 ? 1e-6 : k % 3 == 1 ? 0x1p-10 : 0x1p-7;
        for (size_t i = 0; i < N * C; i++) want[i] = out[0][1][i];
        fx_assert_close(out[1][1], want, N * C, 2 * ulp, ulp, "grad");
        for (int s = 0; s < 2; s++) { free(out[s][0]); free(out[s][1]); }
    }
}

static void test_usage_errors(void **state) {
    (void)state;
    const char *x = path("x.npy"), *y = path("y.npy");
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--bogus"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--targets", y));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits", x));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits", x,
                                     "--targets", y, "--probs", y));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits", x,
                                     "--targets", y, "--label-smoothing", "abc"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits", x,
                                     "--targets", y, "--label-smoothing", "1.5"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits", x,
                                     "--targets", y, "--reduction", "avg"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits", x,
                                     "--targets", y, "--dtype", "f64"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits", x,
                                     "--targets", y, "--ignore-index", "1x"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits", x,
                                     "--probs", x, "--ignore-index", "3"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_run, "run", "--logits"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_bench, "bench", "--repeat", "x"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_bench, "bench", "--repeat", "0"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_bench, "bench", "--shapes", "0x5"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_bench, "bench", "--shapes", "64x"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_bench, "bench", "--ops", "fast"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_bench, "bench", "--dtype", "f8"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_check, "check", "--slow"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_demo, "demo", "--device"));
    assert_int_equal(CLI_USAGE, CALL(clxent_cmd_devices, "devices", "--all"));
    assert_int_equal(CLI_OK, CALL(clxent_cmd_run, "run", "--help"));
    assert_int_equal(CLI_OK, CALL(clxent_cmd_bench, "bench", "--help"));
}

static void test_bad_files(void **state) {
    (void)state;
    const char *x = path("x.npy"), *h = "host";
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device", h,
                                       "--logits", path("none.npy"),
                                       "--targets", path("y.npy")));
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device", h,
                                       "--logits", path("junk.npy"),
                                       "--targets", path("y.npy")));
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device", h,
                                       "--logits", x, "--targets",
                                       path("yfloat.npy")));
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device", h,
                                       "--logits", x, "--targets",
                                       path("yshape.npy")));
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device", h,
                                       "--logits", path("y.npy"), "--targets",
                                       path("y.npy")));
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device", h,
                                       "--logits", x, "--targets",
                                       path("y.npy"), "--weights",
                                       path("w_short.npy")));
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device", h,
                                       "--logits", x, "--targets",
                                       path("ybad.npy")));
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device",
                                       "nosuch-device", "--logits", x,
                                       "--targets", path("y.npy")));
}

/* An (N, C, d) input and its transposed (N*d, C) matrix give the same
 * losses, lse and gradients (transposed back), for cross_entropy and
 * nll_loss, and the same softmax over their class axes. */
static void run_nd_on(const char *spec) {
    const char *x3p = path("x3.npy"), *x2p = path("x2.npy");
    for (int op = 0; op < 3; op++) {
        const char *name = op == 0 ? "cross_entropy" : op == 1 ? "nll_loss"
                                                               : "softmax";
        int rc3, rc2;
        if (op < 2) {
            const char *lse3 = op == 0 ? "--lse-out" : "--grad-scale";
            const char *lse3v = op == 0 ? path("lse.npy") : "1";
            const char *lse2v = op == 0 ? path("lse2.npy") : "1";
            rc3 = CALL(clxent_cmd_run, "run", "--device", spec, "--op", name,
                       "--input", x3p, "--targets", path("y3.npy"),
                       "--reduction", "none", "--loss-out", path("loss.npy"),
                       "--grad-out", path("grad.npy"), lse3, lse3v);
            rc2 = CALL(clxent_cmd_run, "run", "--device", spec, "--op", name,
                       "--input", x2p, "--targets", path("y2.npy"),
                       "--reduction", "none", "--loss-out", path("loss2.npy"),
                       "--grad-out", path("grad2.npy"), lse3, lse2v);
        } else {
            rc3 = CALL(clxent_cmd_run, "run", "--device", spec, "--op", name,
                       "--input", x3p, "--dim", "1", "--out", path("out.npy"));
            rc2 = CALL(clxent_cmd_run, "run", "--device", spec, "--op", name,
                       "--input", x2p, "--out", path("out2.npy"));
        }
        assert_int_equal(rc3, CLI_OK);
        assert_int_equal(rc2, CLI_OK);
        const size_t rows = ND * NK, all = ND * NC * NK;
        float *g3 = load(op < 2 ? "grad.npy" : "out.npy", all);
        float *g2 = load(op < 2 ? "grad2.npy" : "out2.npy", all);
        double want[ND * NC * NK];
        for (int n = 0; n < ND; n++)
            for (int c = 0; c < NC; c++)
                for (int k = 0; k < NK; k++)
                    want[(n * NC + c) * NK + k] = g2[(n * NK + k) * NC + c];
        fx_assert_close(g3, want, all, 1e-6, 1e-6, name);
        free(g3);
        free(g2);
        for (int k = 0; k < (op == 0 ? 2 : op == 1 ? 1 : 0); k++) {
            float *a = load(k ? "lse.npy" : "loss.npy", rows);
            float *b = load(k ? "lse2.npy" : "loss2.npy", rows);
            for (size_t i = 0; i < rows; i++) want[i] = b[i];
            fx_assert_close(a, want, rows, 1e-6, 1e-6, k ? "lse" : "loss");
            free(a);
            free(b);
        }
    }
}

static void test_run_nd_host(void **state) {
    (void)state;
    run_nd_on("host");
}

static void test_run_nd_device(void **state) {
    (void)state;
    const char *spec = fx_device_spec();
    if (!spec) return;
    run_nd_on(spec);
}

/* Bad N-d input: exit 1 and a message that says what is wrong. */
static void test_run_nd_errors(void **state) {
    (void)state;
    const char *h = "host", *x3p = path("x3.npy");
    char err[2048];
    const char *y3 = path("y3.npy");
    struct { const char *want; int rc; const char *args[12]; } cases[] = {
        {"(1, 2) = 5 is outside [0, 5)", CLI_RUNTIME,
         {"--input", x3p, "--targets", path("y3bad.npy")}},
        {"more than 8 dimensions", CLI_RUNTIME,
         {"--op", "softmax", "--input", path("x9.npy")}},
        {"0-d input has no class axis", CLI_RUNTIME,
         {"--input", path("x0.npy"), "--targets", y3}},
        {"--dim 3 is out of range for the 3-d input", CLI_RUNTIME,
         {"--op", "log_softmax", "--dim", "3", "--input", x3p}},
        {"class indices of shape (2, 3) expected", CLI_RUNTIME,
         {"--input", x3p, "--targets", path("y2.npy")}},
        {"one weight per class, (5,) expected", CLI_RUNTIME,
         {"--input", x3p, "--targets", y3, "--weights", path("w.npy")}},
        {"x3d.npy is float64; converted to f32", CLI_OK,
         {"--op", "nll_loss", "--input", path("x3d.npy"), "--targets", y3}},
        {"--grad-out does not apply to --op log_softmax", CLI_USAGE,
         {"--op", "log_softmax", "--input", x3p, "--grad-out", "g.npy"}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *argv[16] = {"run", "--device", h};
        memcpy(argv + 3, cases[k].args, sizeof cases[k].args);
        int rc = call_err(err, sizeof err, clxent_cmd_run, argv);
        if (rc != cases[k].rc || !strstr(err, cases[k].want))
            fail_msg("case %zu: exit %d, expected %d with '%s' in: %s", k, rc,
                     cases[k].rc, cases[k].want, err);
    }
    /* A 0-d input is one class for softmax: 1. */
    assert_int_equal(CLI_OK, CALL(clxent_cmd_run, "run", "--device", h, "--op",
                                  "softmax", "--input", path("x0.npy"),
                                  "--out", path("out.npy")));
    float *one = load("out.npy", 1);
    assert_true(one[0] == 1.0f);
    free(one);
}

/* The device's own range check reports an out-of-range target. */
static void test_bad_target_device(void **state) {
    (void)state;
    const char *spec = fx_device_spec();
    if (!spec) return;
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_run, "run", "--device", spec,
                                       "--logits", path("x.npy"), "--targets",
                                       path("ybad.npy")));
    run_plain_on(spec); /* and the next run is fine */
}

static void test_devices_demo_bench(void **state) {
    (void)state;
    assert_int_equal(CLI_OK, CALL(clxent_cmd_devices, "devices"));
    assert_int_equal(CLI_OK, CALL(clxent_cmd_devices, "devices", "--json"));
    assert_int_equal(CLI_OK, CALL(clxent_cmd_devices, "devices", "--select",
                                  "host"));
    assert_int_equal(CLI_RUNTIME, CALL(clxent_cmd_devices, "devices",
                                       "--select", "nosuch-device"));
    assert_int_equal(CLI_OK, CALL(clxent_cmd_demo, "demo", "--device", "host"));
    assert_int_equal(CLI_OK, CALL(clxent_cmd_bench, "bench", "--device", "host",
                                  "--shapes", "4x10,2x300", "--repeat", "1",
                                  "--svg", path("plot.svg")));
    FILE *f = fopen(path("plot.svg"), "r");
    assert_non_null(f);
    char head[5] = "";
    assert_int_equal(fread(head, 1, 4, f), 4);
    fclose(f);
    assert_string_equal(head, "<svg");
}

/* Runs fn and checks its exit status and that stderr contains want. */
static void expect(int rc, const char *want, int (*fn)(int, char **),
                   const char *const *args) {
    char err[4096];
    int got = call_err(err, sizeof err, fn, args);
    if (got != rc || !strstr(err, want))
        fail_msg("%s %s: exit %d, expected %d with '%s' in: %s", args[0],
                 args[1], got, rc, want, err);
}
#define EXPECT(rc, want, fn, ...)                                             \
    expect(rc, want, fn, (const char *const[]){__VA_ARGS__, NULL})

/* Shapes past the library's limits (2^31 - 1 rows and classes) are usage
 * errors: their buffers' sizes would wrap around. */
static void test_shape_limits(void **state) {
    (void)state;
    const char *lim = "exceeds the limit of 2147483647 rows";
    EXPECT(CLI_USAGE, lim, clxent_cmd_bench, "bench", "--device", "host",
           "--no-host", "--repeat", "1", "--ops", "fused", "--shapes",
           "4611686018427387904x1");
    EXPECT(CLI_USAGE, lim, clxent_cmd_bench, "bench", "--device", "host",
           "--no-host", "--repeat", "1", "--ops", "fused", "--shapes",
           "1x1x4611686018427387904");
    EXPECT(CLI_USAGE, "exceeds the limit", clxent_cmd_bench, "bench",
           "--shapes", "4x2147483648");
    EXPECT(CLI_USAGE, lim, clxent_cmd_tune, "tune", "--device", "host",
           "--shapes", "4611686018427387904x1", "--out", path("t.txt"));
    EXPECT(CLI_USAGE, "exceeds the limit", clxent_cmd_tune, "tune",
           "--shapes", "2147483648x2");
}

/* A finite value that does not fit the storage type is refused, naming
 * the file, the element and the value; NaN and inf in a file are data. */
static void test_run_value_range(void **state) {
    (void)state;
    const char *y = path("y.npy");
    EXPECT(CLI_RUNTIME, "xbig.npy: element 39, at (1, 2), is 1e+39",
           clxent_cmd_run, "run", "--device", "host", "--input",
           path("xbig.npy"), "--targets", y);
    EXPECT(CLI_RUNTIME, "x16.npy: element 115, at (3, 4), is 70000: finite "
           "but beyond f16's range", clxent_cmd_run, "run", "--device",
           "host", "--input", path("x16.npy"), "--targets", y, "--dtype",
           "f16");
    EXPECT(CLI_RUNTIME, "beyond bf16's range", clxent_cmd_run, "run",
           "--device", "host", "--input", path("xbig.npy"), "--targets", y,
           "--dtype", "bf16");
    EXPECT(CLI_OK, "", clxent_cmd_run, "run", "--device", "host", "--input",
           path("xodd.npy"), "--targets", y);
    EXPECT(CLI_OK, "", clxent_cmd_run, "run", "--device", "host", "--input",
           path("x16.npy"), "--targets", y);
}

static int exists(const char *name) { return access(path(name), F_OK) == 0; }

/* No temporary is left in the test directory. */
static void assert_no_temporaries(void) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp")) fail_msg("left behind: %s", e->d_name);
    closedir(d);
}

/* A run whose last output cannot be written leaves every output as it
 * was: a new one absent, an old one unchanged. */
static void test_outputs_all_or_nothing(void **state) {
    (void)state;
    const char *x = path("x.npy"), *y = path("y.npy");
    unlink(path("l3.npy"));
    EXPECT(CLI_RUNTIME, "/nonexistent/g.npy", clxent_cmd_run, "run",
           "--device", "host", "--input", x, "--targets", y, "--loss-out",
           path("l3.npy"), "--grad-out", "/nonexistent/g.npy");
    assert_false(exists("l3.npy"));
    float old[2] = {5, 7};
    size_t two = 2;
    char err[256];
    assert_int_equal(0, npy_write(path("keep.npy"), NPY_F32, 1, &two, old,
                                  err, sizeof err));
    EXPECT(CLI_RUNTIME, "/nonexistent/s.npy", clxent_cmd_run, "run",
           "--device", "host", "--input", x, "--targets", y, "--loss-out",
           path("keep.npy"), "--lse-out", "/nonexistent/s.npy");
    float *kept = load("keep.npy", 2);
    assert_true(kept[0] == 5 && kept[1] == 7);
    free(kept);
    assert_no_temporaries();
    /* and with every output writable, all are written */
    EXPECT(CLI_OK, "", clxent_cmd_run, "run", "--device", "host", "--input",
           x, "--targets", y, "--loss-out", path("l3.npy"), "--lse-out",
           path("keep.npy"));
    free(load("l3.npy", 1));
    free(load("keep.npy", N));
    assert_no_temporaries();
    EXPECT(CLI_USAGE, "--loss-out and --grad-out name the same file",
           clxent_cmd_run, "run", "--input", x, "--targets", y, "--loss-out",
           path("same.npy"), "--grad-out", path("same.npy"));
    EXPECT(CLI_USAGE, "--grad-out and --lse-out name the same file",
           clxent_cmd_run, "run", "--input", x, "--targets", y, "--grad-out",
           "s.npy", "--lse-out", "s.npy");
}

/* A write that fails part-way (here past a file size limit) leaves no
 * truncated file behind. */
static void test_npy_write_failure(void **state) {
    (void)state;
    static float values[4096];
    size_t n = 4096;
    char err[256];
    struct rlimit saved, small;
    assert_int_equal(0, getrlimit(RLIMIT_FSIZE, &saved));
    small = saved;
    small.rlim_cur = 1000;
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(0, setrlimit(RLIMIT_FSIZE, &small));
    int rc = npy_write(path("cut.npy"), NPY_F32, 1, &n, values, err,
                       sizeof err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "write failed"));
    assert_false(exists("cut.npy"));
}

/* The usage errors of options that used to be ignored or caught late. */
static void test_option_errors(void **state) {
    (void)state;
    const char *x = path("x.npy"), *y = path("y.npy");
    EXPECT(CLI_USAGE, "--match: no key given", clxent_cmd_tune, "tune",
           "--device", "host", "--match", ",");
    EXPECT(CLI_USAGE, "--match: no key given", clxent_cmd_tune, "tune",
           "--device", "host", "--match=");
    EXPECT(CLI_USAGE, "--device: empty", clxent_cmd_demo, "demo", "--device",
           "");
    EXPECT(CLI_USAGE, "--device: empty", clxent_cmd_run, "run", "--device=",
           "--input", x, "--targets", y);
    EXPECT(CLI_USAGE, "--device: empty", clxent_cmd_bench, "bench",
           "--device", "", "--shapes", "4x10", "--repeat", "1");
    EXPECT(CLI_USAGE, "--select: empty", clxent_cmd_devices, "devices",
           "--select", "");
    EXPECT(CLI_USAGE, "--logit-scale must be > 0, not 0", clxent_cmd_run,
           "run", "--device", "host", "--input", x, "--targets", y,
           "--logit-scale", "0");
    EXPECT(CLI_USAGE, "--logit-scale must be > 0, not -2", clxent_cmd_run,
           "run", "--device", "host", "--op", "softmax", "--input", x,
           "--logit-scale", "-2");
}

/* Messages that named the wrong problem, and checks that came too late. */
static void test_messages(void **state) {
    (void)state;
    const char *x = path("x.npy"), *y = path("y.npy");
    EXPECT(CLI_RUNTIME, "unsupported dtype '|b1'", clxent_cmd_run, "run",
           "--device", "host", "--input", path("b1.npy"), "--targets", y);
    EXPECT(CLI_RUNTIME, "unsupported dtype '|u1'", clxent_cmd_run, "run",
           "--device", "host", "--input", x, "--targets", path("u1.npy"));
    /* an underflow to a denormal or 0 is still a number; FLT_MAX too */
    EXPECT(CLI_OK, "", clxent_cmd_run, "run", "--device", "host", "--input",
           x, "--targets", y, "--label-smoothing", "1e-310");
    EXPECT(CLI_OK, "", clxent_cmd_run, "run", "--device", "host", "--input",
           x, "--targets", y, "--z-loss", "3.40282e38");
    EXPECT(CLI_USAGE, "'3.5e38' is beyond float's range", clxent_cmd_run,
           "run", "--input", x, "--targets", y, "--z-loss", "3.5e38");
    EXPECT(CLI_USAGE, "'1e400' is beyond float's range", clxent_cmd_run,
           "run", "--input", x, "--targets", y, "--z-loss", "1e400");
    EXPECT(CLI_USAGE, "'nan' is not a finite number", clxent_cmd_run, "run",
           "--input", x, "--targets", y, "--z-loss", "nan");
    EXPECT(CLI_RUNTIME, "--out /nonexistent/t.txt: cannot be written",
           clxent_cmd_tune, "tune", "--device", "host", "--out",
           "/nonexistent/t.txt");
    EXPECT(CLI_RUNTIME, "--svg /nonexistent/p.svg: cannot be written",
           clxent_cmd_bench, "bench", "--device", "host", "--shapes", "4x10",
           "--repeat", "1", "--svg", "/nonexistent/p.svg");
}

/* The reader stops at what the header says: a stream that never ends
 * (here a pipe whose writer stays) is judged by its first bytes. */
static void test_npy_read_stops_early(void **state) {
    (void)state;
    const char *fifo = path("fifo.npy");
    unlink(fifo);
    assert_int_equal(0, mkfifo(fifo, 0600));
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int fd = open(fifo, O_WRONLY);
        static const char zeros[64];
        if (fd >= 0 && write(fd, zeros, sizeof zeros) > 0) {
            alarm(30); /* never outlive the test */
            pause();
        }
        _exit(0);
    }
    npy_array a;
    char err[256];
    int rc = npy_read(fifo, &a, err, sizeof err);
    int writer_alive = waitpid(child, NULL, WNOHANG) == 0;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "bad magic"));
    assert_true(writer_alive); /* it returned without waiting for the end */
}

/* bench releases the device buffers of a shape whose timing fails (a
 * leak shows in the sanitizer's report at exit). */
static void test_bench_failure_releases(void **state) {
    (void)state;
    const char *spec = fx_device_spec();
    if (!spec) return;
    clx_fault_arm(0);
    assert_int_equal(CLI_OK, CALL(clxent_cmd_bench, "bench", "--device", spec,
                                  "--no-host", "--ops", "fused", "--shapes",
                                  "4x10", "--repeat", "1"));
    long total = clx_fault_calls(), failed = 0;
    /* the last calls: the timing, the trim and context destruction */
    for (long k = total > 40 ? total - 40 : 1; k <= total; k++) {
        clx_fault_arm(k);
        char err[4096];
        int rc = call_err(err, sizeof err, clxent_cmd_bench,
                          (const char *const[]){"bench", "--device", spec,
                                                "--no-host", "--ops", "fused",
                                                "--shapes", "4x10",
                                                "--repeat", "1", NULL});
        clx_fault_arm(0);
        failed += rc == CLI_RUNTIME;
    }
    assert_true(failed > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_host),
        cmocka_unit_test(test_run_device),
        cmocka_unit_test(test_run_options_device_vs_host),
        cmocka_unit_test(test_run_nd_host),
        cmocka_unit_test(test_run_nd_device),
        cmocka_unit_test(test_run_nd_errors),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_target_device),
        cmocka_unit_test(test_devices_demo_bench),
        cmocka_unit_test(test_shape_limits),
        cmocka_unit_test(test_run_value_range),
        cmocka_unit_test(test_outputs_all_or_nothing),
        cmocka_unit_test(test_npy_write_failure),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_npy_read_stops_early),
        cmocka_unit_test(test_bench_failure_releases),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
