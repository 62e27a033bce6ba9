/* The PyTorch oracle's toolkit of oracle_harness.h. */
#include "oracle_harness.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CLXENT_SOURCE_DIR
#error "CLXENT_SOURCE_DIR must name the source tree (tests/CMakeLists.txt)"
#endif

#define ORACLE_DIR CLXENT_SOURCE_DIR "/tests/oracle"

/* ------------------------------------------------------------------ */
/* Fixture files. */

void *load_npy(const oc_case *c, const char *file, npy_dtype want,
               size_t count) {
    char path[512], error[512];
    snprintf(path, sizeof path, "%s/%s/%s", ORACLE_DIR, c->name, file);
    npy_array a;
    if (npy_read(path, &a, error, sizeof error) != 0)
        fail_msg("%s", error);
    if (a.dtype != want || a.count != count)
        fail_msg("%s: dtype %d count %zu, expected dtype %d count %zu", path,
                 (int)a.dtype, a.count, (int)want, count);
    void *data = malloc(count * 8 + 8);
    assert_non_null(data);
    if (count) memcpy(data, a.data, count * (want == NPY_I64 ? 8 : 4));
    npy_free(&a);
    return data;
}

/* Expected values: float64 stored as int64 bit patterns (gen_oracle.py). */
double *load_expect(const oc_case *c, const char *file, size_t count) {
    int64_t *bits = load_npy(c, file, NPY_I64, count);
    double *out = malloc(count * sizeof(double) + 8);
    assert_non_null(out);
    if (count) memcpy(out, bits, count * sizeof(double));
    free(bits);
    return out;
}

/* ------------------------------------------------------------------ */
/* Buffers that keep what was uploaded (padding reference). */

held upload_bytes(clxent_context *ctx, const void *data,
                  size_t bytes) {
    held h;
    h.bytes = bytes;
    h.image = malloc(bytes + 1);
    assert_non_null(h.image);
    if (data)
        memcpy(h.image, data, bytes);
    else
        memset(h.image, 0x7f, bytes);
    h.buf = fx_upload(ctx, h.image, bytes);
    return h;
}

void release(held *h) {
    clxent_buffer_release(h->buf);
    free(h->image);
    h->buf = NULL;
    h->image = NULL;
}

clxent_vector vector_in(clxent_context *ctx, const void *values,
                        size_t length, clxent_dtype dtype,
                        size_t offset, held *h) {
    size_t es = clxent_dtype_size(dtype);
    size_t bytes = (offset + length) * es;
    unsigned char *staged = malloc(bytes + 1);
    assert_non_null(staged);
    memset(staged, 0x7f, bytes);
    if (values && length) memcpy(staged + offset * es, values, length * es);
    *h = upload_bytes(ctx, staged, bytes);
    free(staged);
    clxent_vector v = {h->buf, offset, length, dtype};
    return v;
}

/* ------------------------------------------------------------------ */
/* Comparison. */

static double unit_roundoff(clxent_dtype dtype) {
    return dtype == CLXENT_F16 ? ldexp(1.0, -11)
           : dtype == CLXENT_BF16 ? ldexp(1.0, -8)
                                  : 0.0;
}

/* The f32 bound plus one rounding to dtype. */
tol tol_for(double abs, double rel1, clxent_dtype dtype) {
    double u = unit_roundoff(dtype);
    tol t = {abs * (1 + u) + (dtype == CLXENT_F16 ? ldexp(1.0, -25) : 0.0),
             rel1 * (1 + u), u};
    return t;
}

static const tol EXACT = {0, 0, 0};

/* zero_rows (optional, per row of `cols` elements): rows whose values must
 * be exactly 0. extra (optional): per-element addition to the bound. */
void compare_x(const oc_case *c, const char *route, const char *what,
               const float *got, const double *want, size_t n,
               size_t cols, tol t, const unsigned char *zero_rows,
               const double *extra) {
    for (size_t i = 0; i < n; ++i) {
        size_t row = cols ? i / cols : i, col = cols ? i % cols : 0;
        double g = got[i], w = want[i];
        if (zero_rows && zero_rows[row]) {
            if (g != 0.0)
                fail_msg("%s [%s, %s] %s[%zu][%zu]: got %.9g, want exactly 0 "
                         "(ignored row)",
                         c->name, c->backend_host ? "host" : "device", route,
                         what, row, col, g);
            continue;
        }
        double fixed = t.abs + t.rel1 * fmax(1.0, fabs(w)) +
                       (extra ? extra[i] : 0.0);
        double bound = fixed + t.u * fabs(w);
        int ok = fx_close(g, w, fixed, t.u);
        if (!ok && !cols)
            fail_msg("%s [%s, %s] %s[%zu]: got %.9g, want %.17g "
                     "(|diff| %.3g > bound %.3g)",
                     c->name, c->backend_host ? "host" : "device", route,
                     what, row, g, w, fabs(g - w), bound);
        if (!ok)
            fail_msg("%s [%s, %s] %s[%zu][%zu]: got %.9g, want %.17g "
                     "(|diff| %.3g > bound %.3g)",
                     c->name, c->backend_host ? "host" : "device", route,
                     what, row, col, g, w, fabs(g - w), bound);
    }
}

void compare(const oc_case *c, const char *route, const char *what,
             const float *got, const double *want, size_t n,
             size_t cols, tol t, const unsigned char *zero_rows) {
    compare_x(c, route, what, got, want, n, cols, t, zero_rows, NULL);
}

/* The four row primitives' results (max, exp-sum, log_softmax, softmax),
 * R rows of C, by either route (matrix or tensor calls). */
void compare_stats(const oc_case *c, const char *route,
                   const float *gm, const float *gs, const float *gl,
                   const float *gp, const double *want_max,
                   const double *want_sum, const double *want_lsm,
                   const double *want_sm, size_t R, size_t C) {
    compare(c, route, "max", gm, want_max, R, 0, EXACT, NULL);
    compare(c, route, "expsum", gs, want_sum, R, 0,
            tol_for(0.0, 2e-6, CLXENT_F32), NULL);
    compare(c, route, "log_softmax", gl, want_lsm, R * C, C,
            tol_for(0.0, 2e-6, c->dtype), NULL);
    compare(c, route, "softmax", gp, want_sm, R * C, C,
            tol_for(2e-6, 0.0, c->dtype), NULL);
}

void ok_or_fail(clxent_context *ctx, const oc_case *c,
                const char *route, const char *call,
                clxent_status st) {
    if (st != CLXENT_STATUS_OK)
        fail_msg("%s [%s, %s] %s: %s: %s", c->name,
                 c->backend_host ? "host" : "device", route, call,
                 clxent_status_name(st), clxent_context_message(ctx));
}

/* ------------------------------------------------------------------ */
/* Inputs of one case. */

/* (outer, C, inner) in torch order to rows x C row-major, row o*inner+i,
 * for elements of `size` bytes. */
static void *rows_of(const oc_case *c, const void *t, size_t size) {
    size_t C = c->cols, n = c->rows * C;
    const char *src = t;
    char *out = malloc(n * size + 8);
    assert_non_null(out);
    for (size_t o = 0; o < c->outer; ++o)
        for (size_t k = 0; k < C; ++k)
            for (size_t i = 0; i < c->inner; ++i)
                memcpy(out + ((o * c->inner + i) * C + k) * size,
                       src + ((o * C + k) * c->inner + i) * size, size);
    return out;
}

float *rows_of_f(const oc_case *c, const float *t) {
    return rows_of(c, t, sizeof *t);
}

double *rows_of_d(const oc_case *c, const double *t) {
    return rows_of(c, t, sizeof *t);
}

/* x' of the logit transforms, and dx'/dx, in double. */
static double transformed(const oc_case *c, double x, double *slope) {
    double a = c->ndim ? c->logit_scale : 1.0, cap = c->softcap;
    if (cap == 0) {
        if (slope) *slope = a;
        return a * x;
    }
    double t = tanh(a * x / cap);
    if (slope) *slope = a * (1 - t * t);
    return cap * t;
}

oc_inputs load_inputs(const oc_case *c) {
    oc_inputs in;
    memset(&in, 0, sizeof in);
    size_t R = c->rows, C = c->cols;
    in.x = load_npy(c, "x.npy", NPY_F32, R * C);
    in.nloss = c->reduction == CLXENT_REDUCTION_NONE ? R : 1;
    in.zero_rows = calloc(R + 1, 1);
    assert_non_null(in.zero_rows);
    if (!strcmp(c->target, "i32") || !strcmp(c->target, "i64")) {
        int wide = !strcmp(c->target, "i64");
        in.index_dtype = wide ? CLXENT_I64 : CLXENT_I32;
        in.indices = load_npy(c, "targets.npy", wide ? NPY_I64 : NPY_I32, R);
        for (size_t r = 0; r < R; ++r) {
            int64_t y = wide ? ((int64_t *)in.indices)[r]
                             : ((int32_t *)in.indices)[r];
            in.zero_rows[r] = y == c->ignore_index;
        }
    } else if (!strcmp(c->target, "probs")) {
        in.probs = load_npy(c, "targets.npy", NPY_F32, R * C);
    }
    if (c->has_weights) in.weights = load_npy(c, "weights.npy", NPY_F32, C);
    if (c->has_grad_rows)
        in.grad_rows = load_npy(c, "grad_rows.npy", NPY_F32, R);
    in.x_rows = c->ndim ? rows_of_f(c, in.x) : in.x;
    in.probs_rows = c->ndim && in.probs ? rows_of_f(c, in.probs) : in.probs;
    return in;
}

void free_inputs(oc_inputs *in) {
    if (in->x_rows != in->x) free(in->x_rows);
    if (in->probs_rows != in->probs) free(in->probs_rows);
    free(in->x);
    free(in->indices);
    free(in->probs);
    free(in->weights);
    free(in->grad_rows);
    free(in->zero_rows);
}

clxent_loss_options options_of(const oc_case *c) {
    clxent_loss_options o;
    clxent_loss_options_init(&o);
    o.reduction = c->reduction;
    o.ignore_index = c->ignore_index;
    o.label_smoothing = c->eps;
    o.z_loss = c->z;
    o.grad_scale = c->G;
    o.normalizer = c->D;
    o.all_ignored_zero = c->aiz;
    return o;
}

/* ------------------------------------------------------------------ */
/* What a loss route wrote, against the oracle. */

/* The outputs a route wrote (NULL: not written) against e. */
void check_route(const oc_case *c, const oc_inputs *in,
                 const ce_expect *e, const char *route,
                 const float *loss, const float *lse,
                 const float *grad, const double *grad_extra) {
    tol tl = tol_for(0.0, 2e-6, CLXENT_F32);
    tol tg = tol_for(2e-6, 0.0, c->dtype);
    if (loss)
        compare(c, route, "loss", loss, e->loss, in->nloss, 0, tl,
                c->reduction == CLXENT_REDUCTION_NONE ? in->zero_rows
                                                      : NULL);
    if (lse) compare(c, route, "lse", lse, e->lse, c->rows, 0, tl, NULL);
    if (grad)
        compare_x(c, route, "grad", grad, e->grad, c->rows * c->cols,
                  c->cols, tg, in->zero_rows, grad_extra);
}

/* Backward takes the lse that forward saved in f32, so its softmax is
 * p * exp(lse - fl32(lse)), off by up to 2^-24 * |lse| relative: a limit
 * of the API (lse is f32), not of the implementation, which matters for
 * wide logits (|lse| ~ 100). The forward+backward gradient bound adds
 * 2^-24 * |lse[r]| * |d grad[r][c] / d lse[r]|, with
 * d grad / d lse = -G*s*p*(K + 2*zeta*lse) + 2*G*s*zeta*p, K = sum_j a_j
 * (docs/semantics.md's gradient). */
double *saved_lse_slack(const oc_case *c, const oc_inputs *in,
                        const double *lse) {
    size_t R = c->rows, C = c->cols;
    double *slack = calloc(R * C + 1, sizeof(double));
    assert_non_null(slack);
    double eps = c->eps, z = c->z, wsum = 0.0, W = 0.0;
    for (size_t k = 0; k < C; ++k) wsum += in->weights ? in->weights[k] : 1;
    for (size_t r = 0; r < R; ++r) {
        if (in->zero_rows[r]) continue;
        if (in->probs) {
            W += 1.0;
        } else {
            int64_t y = in->index_dtype == CLXENT_I64
                            ? ((const int64_t *)in->indices)[r]
                            : ((const int32_t *)in->indices)[r];
            W += in->weights ? in->weights[y] : 1.0;
        }
    }
    double s = 1.0;
    if (c->reduction == CLXENT_REDUCTION_MEAN)
        s = c->D != 0 ? 1.0 / c->D : W > 0 ? 1.0 / W : 0.0;
    for (size_t r = 0; r < R; ++r) {
        if (in->zero_rows[r] || !isfinite(lse[r])) continue;
        double K = 0.0;
        if (in->probs) {
            for (size_t k = 0; k < C; ++k)
                K += (in->weights ? in->weights[k] : 1.0) *
                     ((1 - eps) * in->probs_rows[r * C + k] +
                      eps / (double)C);
        } else {
            int64_t y = in->index_dtype == CLXENT_I64
                            ? ((const int64_t *)in->indices)[r]
                            : ((const int32_t *)in->indices)[r];
            K = (1 - eps) * (in->weights ? in->weights[y] : 1.0) +
                eps / (double)C * wsum;
        }
        double G = c->G * (in->grad_rows ? in->grad_rows[r] : 1.0);
        double coef = fabs(G * s) * (fabs(K) + 2 * fabs(z * lse[r]) +
                                     2 * fabs(z));
        for (size_t k = 0; k < C; ++k) {
            /* the gradient on x' times dx'/dx (1 without transforms) */
            double slope = 1.0;
            double p = exp(transformed(c, in->x_rows[r * C + k], &slope) -
                           lse[r]);
            if (isfinite(p))
                slack[r * C + k] = ldexp(1.0, -24) * fabs(lse[r]) * p * coef *
                                   fabs(slope) * 1.01;
        }
    }
    return slack;
}

/* ------------------------------------------------------------------ */
/* Manifest. */

static int parse_dtype(const char *s, clxent_dtype *out) {
    if (!strcmp(s, "f32")) *out = CLXENT_F32;
    else if (!strcmp(s, "f16")) *out = CLXENT_F16;
    else if (!strcmp(s, "bf16")) *out = CLXENT_BF16;
    else return -1;
    return 0;
}

static int parse_reduction(const char *s, clxent_reduction *out) {
    if (!strcmp(s, "none")) *out = CLXENT_REDUCTION_NONE;
    else if (!strcmp(s, "sum")) *out = CLXENT_REDUCTION_SUM;
    else if (!strcmp(s, "mean")) *out = CLXENT_REDUCTION_MEAN;
    else return -1;
    return 0;
}

/* The key=value columns after the fixed ones (tensor cases): shape=AxBx..
 * (torch's), dim=K (the class axis), softcap=, logit_scale=. Fills
 * outer and inner and checks them against rows and cols. */
static int parse_extras(const char *p, oc_case *c) {
    c->logit_scale = 1.0f;
    char key[32], value[128];
    int used = 0, has_dim = 0;
    while (sscanf(p, " %31[^= \n]=%127s%n", key, value, &used) == 2) {
        p += used;
        if (!strcmp(key, "shape")) {
            char *s = value, *end;
            for (c->ndim = 0; c->ndim < 8; ++c->ndim) {
                c->shape[c->ndim] = strtoull(s, &end, 10);
                if (end == s) return -1;
                s = end;
                if (*s != 'x') break;
                ++s;
            }
            if (*s) return -1;
            ++c->ndim;
        } else if (!strcmp(key, "dim")) {
            c->dim = (unsigned)strtoul(value, NULL, 10);
            has_dim = 1;
        } else if (!strcmp(key, "softcap")) {
            c->softcap = strtof(value, NULL);
        } else if (!strcmp(key, "logit_scale")) {
            c->logit_scale = strtof(value, NULL);
        } else {
            return -1;
        }
    }
    if (sscanf(p, " %1s", key) == 1) return -1; /* junk left over */
    int nd = strstr(c->op, "_nd") != NULL;
    if (nd != (c->ndim > 0) || (nd && (!has_dim || c->dim >= c->ndim)))
        return -1;
    if (!nd) return 0;
    c->outer = c->inner = 1;
    for (unsigned k = 0; k < c->dim; ++k) c->outer *= c->shape[k];
    for (unsigned k = c->dim + 1; k < c->ndim; ++k) c->inner *= c->shape[k];
    return c->rows == c->outer * c->inner && c->cols == c->shape[c->dim]
               ? 0
               : -1;
}

/* Reads the manifest's tensor cases (nd 1) or matrix cases (nd 0);
 * returns their number or -1 with a message. */
static long read_manifest(oc_case **out, int nd) {
    const char *path = ORACLE_DIR "/manifest.txt";
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    size_t cap = 64, n = 0;
    oc_case *cases = malloc(cap * sizeof *cases);
    char line[1024];
    long lineno = 0;
    while (cases && fgets(line, sizeof line, f)) {
        ++lineno;
        if (line[0] == '#' || line[0] == '\n') continue;
        oc_case c;
        memset(&c, 0, sizeof c);
        char dtype[8], reduction[8];
        int used = 0;
        int got = sscanf(line,
                         "%95s %15s %7s %7s %zu %zu %7s %" SCNd64
                         " %f %f %f %f %d %d %d%n",
                         c.name, c.op, dtype, c.target, &c.rows, &c.cols,
                         reduction, &c.ignore_index, &c.eps, &c.z, &c.G,
                         &c.D, &c.aiz, &c.has_weights, &c.has_grad_rows,
                         &used);
        if (got != 15 || parse_dtype(dtype, &c.dtype) ||
            parse_reduction(reduction, &c.reduction) ||
            parse_extras(line + used, &c)) {
            fprintf(stderr, "%s:%ld: malformed line\n", path, lineno);
            free(cases);
            fclose(f);
            return -1;
        }
        if ((c.ndim > 0) != nd) continue; /* the other program's */
        if (n == cap) {
            cap *= 2;
            oc_case *grown = realloc(cases, cap * sizeof *cases);
            if (!grown) {
                free(cases);
                cases = NULL;
                break;
            }
            cases = grown;
        }
        cases[n++] = c;
    }
    fclose(f);
    if (!cases || n == 0) {
        fprintf(stderr, "%s: %s\n", path, cases ? "no cases" : "no memory");
        free(cases);
        return -1;
    }
    *out = cases;
    return (long)n;
}

/* The running program's ops (oracle_main): a cmocka test gets only its
 * case. */
static const oracle_op *run_ops;
static size_t n_run_ops;

static void test_case(void **state) {
    const oc_case *c = *state;
    /* one context per backend, reused by every case */
    clxent_context *ctx = c->backend_host ? fx_host() : fx_device();
    if (!ctx) return;
    oc_inputs in = load_inputs(c);
    size_t k = 0;
    while (k < n_run_ops && strcmp(c->op, run_ops[k].op)) ++k;
    if (k < n_run_ops)
        run_ops[k].run(ctx, c, &in);
    else
        fail_msg("%s: unknown op %s", c->name, c->op);
    free_inputs(&in);
}

int oracle_main(const char *group, int nd, const oracle_op *ops,
                size_t n_ops) {
    run_ops = ops;
    n_run_ops = n_ops;
    oc_case *cases = NULL;
    long n = read_manifest(&cases, nd);
    if (n < 0) return 1;
    /* Each case twice: host backend, then the OpenCL device. */
    size_t total = 2 * (size_t)n;
    oc_case *entries = malloc(total * sizeof *entries);
    struct CMUnitTest *tests = calloc(total, sizeof *tests);
    char (*names)[128] = malloc(total * sizeof *names);
    if (!entries || !tests || !names) return 1;
    for (size_t i = 0; i < total; ++i) {
        int host = i < (size_t)n;
        entries[i] = cases[i % (size_t)n];
        entries[i].backend_host = host;
        snprintf(names[i], sizeof names[i], "%s/%s", host ? "host" : "device",
                 entries[i].name);
        tests[i].name = names[i];
        tests[i].test_func = test_case;
        tests[i].initial_state = &entries[i];
    }
    int failed = _cmocka_run_group_tests(group, tests, total, NULL,
                                         fx_group_teardown);
    free(names);
    free(tests);
    free(entries);
    free(cases);
    return failed;
}
