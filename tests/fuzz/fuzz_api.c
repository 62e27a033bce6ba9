/* libFuzzer harness over the public operations: the input bytes decode to
 * a small shape, an operation (the first byte indexes the table of
 * tools/clxent/ops.h; the seed corpus follows its order), options (valid values, or raw floats and
 * wild enums), storage types, logits (small quantized values with NaN,
 * infinities and denormals, or raw bit patterns) and class indices (in
 * range, ignore_index, or any integer). The same call runs on the host
 * backend and on the OpenCL device (CLXENT_FUZZ_DEVICE, default: the
 * empty spec); the statuses must be equal and, on success with quantized
 * inputs, the results must agree within tolerance (NaN matching NaN).
 * Any difference aborts, so libFuzzer keeps the input. */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <clxent/clxent.h>

#include "commands.h"  /* the storage-type conversions */
#include "ops.h"
#include "tolerance.h" /* fx_close */

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- input decoding ---- */

typedef struct src {
    const uint8_t *p;
    size_t n;
} src;

static uint8_t u8(src *s) {
    if (!s->n) return 0;
    --s->n;
    return *s->p++;
}
static uint32_t u32(src *s) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= (uint32_t)u8(s) << (8 * i);
    return v;
}
static uint64_t u64(src *s) {
    uint64_t lo = u32(s);
    return lo | (uint64_t)u32(s) << 32;
}
static float raw_f32(src *s) {
    uint32_t b = u32(s);
    float f;
    memcpy(&f, &b, 4);
    return f;
}
/* Small values on a 1/8 grid, with the special cases a loss meets. */
static float quantized(uint8_t b) {
    switch (b) {
    case 0xff: return NAN;
    case 0xfe: return INFINITY;
    case 0xfd: return -INFINITY;
    case 0xfc: return 1e-40f; /* f32 denormal */
    case 0xfb: return -3e4f;
    case 0xfa: return 3e4f;
    case 0xf9: return 6e-8f; /* f16 denormal */
    }
    return ((float)b - 128.0f) / 8.0f;
}

enum {
    F_RAW_LOGITS = 1, F_RAW_OPTIONS = 2, F_WEIGHTS = 4, F_GRAD_ROWS = 8,
    F_LSE = 16, F_DEFERRED = 32, F_RAW_TARGETS = 64, F_ALL_IGNORED_ZERO = 128
};

typedef struct problem {
    ops_id op;
    size_t rows, cols;
    clxent_dtype dtype, tdtype; /* tdtype: I32, I64 or dtype (probs) */
    unsigned flags;
    clxent_loss_options opt;
    unsigned char *x, *probs; /* rows x cols of dtype */
    unsigned char *y;         /* rows of tdtype */
    float *w, *g, *vin;       /* cols, rows, rows */
} problem;

static void decode(src *s, problem *p) {
    memset(p, 0, sizeof *p);
    p->op = (ops_id)(u8(s) % OPS_COUNT);
    unsigned io = ops_table[p->op].io;
    p->rows = u8(s) % 9;
    uint8_t cb = u8(s);
    if (cb & 0x80) { /* up to 2048 classes: several work-groups a row */
        size_t lo = u8(s), hi = u8(s) & 7;
        p->cols = 1 + (lo | hi << 8);
    } else {
        p->cols = 1 + (size_t)(cb % 40);
    }
    p->dtype = (clxent_dtype)(1 + u8(s) % 3);
    int kind = u8(s) % 3;
    int ce = (io & OPS_TARGETS) != 0;
    p->tdtype = kind == 0 ? CLXENT_I32
                : kind == 1 || !ce ? CLXENT_I64
                                   : p->dtype;
    p->flags = u8(s);
    clxent_loss_options *o = &p->opt;
    clxent_loss_options_init(o);
    uint8_t ig = u8(s);
    if (ig == 0 || ig > p->cols + 1)
        o->ignore_index = -100;
    else if (ig == p->cols + 1)
        o->ignore_index = (int64_t)u64(s);
    else
        o->ignore_index = ig - 1;
    if (p->tdtype != CLXENT_I32 && p->tdtype != CLXENT_I64 && ig != 0xff)
        o->ignore_index = -100; /* mostly valid for probabilities */
    if (p->flags & F_RAW_OPTIONS) {
        o->reduction = (clxent_reduction)(int8_t)u8(s);
        o->label_smoothing = raw_f32(s);
        o->z_loss = raw_f32(s);
        o->grad_scale = raw_f32(s);
        o->normalizer = raw_f32(s);
        o->all_ignored_zero = (int8_t)u8(s);
        o->in_place = (int8_t)u8(s);
        o->target_check = (clxent_target_check)(int8_t)u8(s);
    } else {
        o->reduction = (clxent_reduction)(u8(s) % 3);
        uint8_t e = u8(s);
        o->label_smoothing = e < 128 ? 0.0f : (float)(e - 128) / 127.0f;
        uint8_t z = u8(s);
        o->z_loss = z < 128 ? 0.0f : (float)(z - 128) / 512.0f;
        o->grad_scale = ((float)u8(s) - 128.0f) / 16.0f;
        uint8_t nb = u8(s);
        o->normalizer = nb < 128 ? 0.0f : (float)(nb - 127) / 4.0f;
        o->all_ignored_zero = (p->flags & F_ALL_IGNORED_ZERO) != 0;
        o->target_check =
            p->flags & F_DEFERRED ? CLXENT_CHECK_DEFERRED : CLXENT_CHECK_SYNC;
        if (io & OPS_INDICES) /* NLL takes neither */
            o->label_smoothing = o->z_loss = 0.0f;
    }

    size_t n = p->rows * p->cols, es = clxent_dtype_size(p->dtype);
    p->x = malloc(n * es + 1);
    p->probs = malloc(n * es + 1);
    p->y = malloc(p->rows * 8 + 1);
    p->w = malloc(p->cols * 4 + 4);
    p->g = malloc(p->rows * 4 + 4);
    p->vin = malloc(p->rows * 4 + 4);
    if (!p->x || !p->probs || !p->y || !p->w || !p->g || !p->vin) abort();
    for (size_t i = 0; i < n; ++i) {
        if (p->flags & F_RAW_LOGITS) {
            if (es == 4) {
                uint32_t bits = u32(s);
                memcpy(p->x + 4 * i, &bits, 4);
            } else {
                uint16_t lo = u8(s), hi = u8(s);
                uint16_t bits = (uint16_t)(lo | hi << 8);
                memcpy(p->x + 2 * i, &bits, 2);
            }
        } else {
            cli_store(p->x, i, p->dtype, quantized(u8(s)));
        }
        cli_store(p->probs, i, p->dtype, (float)u8(s) / 255.0f);
    }
    for (size_t r = 0; r < p->rows; ++r) {
        int64_t v;
        if (p->flags & F_RAW_TARGETS) {
            v = (int64_t)u64(s);
        } else {
            uint8_t b = u8(s);
            v = b == 0xff   ? -100
                : b == 0xfe ? (int64_t)p->cols
                : b == 0xfd ? -1
                            : (int64_t)(b % p->cols);
            if (b == 0xfc) v = o->ignore_index;
        }
        if (p->tdtype == CLXENT_I32) {
            int32_t v32 = (int32_t)v;
            memcpy(p->y + 4 * r, &v32, 4);
        } else {
            memcpy(p->y + 8 * r, &v, 8);
        }
        p->g[r] = ((float)u8(s) - 128.0f) / 32.0f;
        p->vin[r] = quantized(u8(s));
    }
    for (size_t c = 0; c < p->cols; ++c)
        p->w[c] = (float)(u8(s) + 1) / 32.0f; /* > 0: a zero total weight
                                                 makes 0/0 depend on order */
}

static void free_problem(problem *p) {
    free(p->x);
    free(p->probs);
    free(p->y);
    free(p->w);
    free(p->g);
    free(p->vin);
}

/* ---- running one problem on one context ---- */

enum { B_X, B_Y, B_W, B_G, B_VIN, B_LOSS, B_LSE, B_OUT, B_VEC, B_COUNT };

typedef struct result {
    clxent_status status;
    char message[512];
    float *loss, *lse, *vec; /* f32 */
    float *out;              /* rows x cols, converted to f32 */
    size_t loss_n;
} result;

static clxent_context *open_context(const char *spec) {
    clxent_context *ctx = NULL;
    if (clxent_context_create(spec, &ctx) != CLXENT_STATUS_OK) {
        fprintf(stderr, "fuzz_api: context %s: %s\n", spec,
                clxent_context_message(ctx));
        abort();
    }
    return ctx;
}

static float *to_f32(const unsigned char *v, size_t n, clxent_dtype d) {
    float *out = cli_to_f32(v, n, d);
    if (!out) abort();
    return out;
}

/* The backward takes the forward's saved lse. An arbitrary one is not a
 * meaningful input (the host reference re-centres on it in double, the
 * device uses it as is), so the harness computes the real one, in double
 * from the stored logits, rounded to f32 as the forward stores it. */
static void real_lse(problem *p) {
    size_t es = clxent_dtype_size(p->dtype);
    for (size_t r = 0; r < p->rows; ++r) {
        float *x = to_f32(p->x + r * p->cols * es, p->cols, p->dtype);
        double m = -INFINITY, sum = 0.0;
        for (size_t c = 0; c < p->cols; ++c) {
            if (isnan(x[c])) {
                m = x[c];
                break;
            }
            if (x[c] > m) m = x[c];
        }
        for (size_t c = 0; c < p->cols; ++c) sum += exp((double)x[c] - m);
        p->vin[r] = (float)(m + log(sum));
        free(x);
    }
}

static void run(clxent_context *ctx, const problem *p, result *res) {
    size_t R = p->rows, C = p->cols, n = R * C;
    size_t es = clxent_dtype_size(p->dtype);
    size_t tes = clxent_dtype_size(p->tdtype);
    int probs = p->tdtype == p->dtype;
    size_t bytes[B_COUNT] = {n * es, probs ? n * es : R * tes, C * 4, R * 4,
                             R * 4,  R * 4,  R * 4, n * es, R * 4};
    clxent_buffer *b[B_COUNT] = {0};
    clxent_status st = CLXENT_STATUS_OK;
    memset(res, 0, sizeof *res);
    for (int i = 0; i < B_COUNT && !st; ++i)
        st = clxent_buffer_create(ctx, bytes[i] ? bytes[i] : 1, &b[i]);
    const void *src_data[B_COUNT] = {p->x, probs ? (const void *)p->probs
                                                 : (const void *)p->y,
                                     p->w, p->g, p->vin};
    for (int i = 0; i < B_COUNT && !st; ++i) {
        if (i < B_LOSS) {
            st = clxent_buffer_write(ctx, b[i], 0, bytes[i], src_data[i]);
        } else { /* outputs start as zeros on both backends */
            void *zero = calloc(1, bytes[i] + 1);
            if (!zero) abort();
            st = clxent_buffer_write(ctx, b[i], 0, bytes[i], zero);
            free(zero);
        }
    }
    if (st) {
        fprintf(stderr, "fuzz_api: buffers: %s\n", clxent_context_message(ctx));
        abort();
    }

    const clxent_loss_options *o = &p->opt;
    clxent_matrix x = {b[B_X], 0, R, C, C, p->dtype};
    clxent_matrix out = x;
    out.buffer = b[B_OUT];
    clxent_targets t;
    memset(&t, 0, sizeof t);
    if (probs) {
        t.probs = x;
        t.probs.buffer = b[B_Y];
    } else {
        t.indices = clxent_vector_of(b[B_Y], R, p->tdtype);
    }
    clxent_vector w = clxent_vector_of(
        p->flags & F_WEIGHTS ? b[B_W] : NULL, C, CLXENT_F32);
    int per_row = (p->flags & F_GRAD_ROWS) &&
                  o->reduction == CLXENT_REDUCTION_NONE;
    clxent_vector g = clxent_vector_of(per_row ? b[B_G] : NULL, R,
                                       CLXENT_F32);
    clxent_vector vin = clxent_vector_of(b[B_VIN], R, CLXENT_F32);
    res->loss_n = o->reduction == CLXENT_REDUCTION_NONE ? R : 1;
    clxent_vector loss = clxent_vector_of(b[B_LOSS], res->loss_n, CLXENT_F32);
    clxent_vector lse = clxent_vector_of(
        p->flags & F_LSE ? b[B_LSE] : NULL, R, CLXENT_F32);
    clxent_vector vec = clxent_vector_of(b[B_VEC], R, CLXENT_F32);

    /* the forward and fused calls write the lse (when F_LSE asks for
     * it), the row statistics vec */
    const ops_desc *op = &ops_table[p->op];
    ops_args args = {&x, &t, &t.indices, &w, o, &g, &vin, &loss,
                     op->io & OPS_LSE_OUT ? &lse : &vec, &out, NULL};
    st = op->enqueue(ctx, &args);
    if (st == CLXENT_STATUS_OK) st = clxent_finish(ctx);
    res->status = st;
    snprintf(res->message, sizeof res->message, "%s",
             clxent_context_message(ctx));
    if (st == CLXENT_STATUS_OK) {
        unsigned char *raw = malloc(bytes[B_OUT] + 1);
        res->loss = malloc(R * 4 + 4);
        res->lse = malloc(R * 4 + 4);
        res->vec = malloc(R * 4 + 4);
        if (!raw || !res->loss || !res->lse || !res->vec) abort();
        if (clxent_buffer_read(ctx, b[B_LOSS], 0, bytes[B_LOSS], res->loss) ||
            clxent_buffer_read(ctx, b[B_LSE], 0, bytes[B_LSE], res->lse) ||
            clxent_buffer_read(ctx, b[B_VEC], 0, bytes[B_VEC], res->vec) ||
            clxent_buffer_read(ctx, b[B_OUT], 0, bytes[B_OUT], raw)) {
            fprintf(stderr, "fuzz_api: read: %s\n",
                    clxent_context_message(ctx));
            abort();
        }
        res->out = to_f32(raw, n, p->dtype);
        free(raw);
    } else if (clxent_finish(ctx) != CLXENT_STATUS_OK) {
        /* An error must not leave a pending one behind. */
        fprintf(stderr, "fuzz_api: finish after %s: %s\n",
                clxent_status_name(st), clxent_context_message(ctx));
        abort();
    }
    for (int i = 0; i < B_COUNT; ++i) clxent_buffer_release(b[i]);
}

static void free_result(result *r) {
    free(r->loss);
    free(r->lse);
    free(r->vec);
    free(r->out);
}

/* ---- comparison ---- */

/* The inputs of row r, to make a mismatch readable. */
static void dump_row(const problem *p, size_t r) {
    if (r >= p->rows) return;
    float *x = to_f32(p->x + r * p->cols * clxent_dtype_size(p->dtype),
                      p->cols, p->dtype);
    int64_t y = 0;
    if (p->tdtype == CLXENT_I32) {
        int32_t v;
        memcpy(&v, p->y + 4 * r, 4);
        y = v;
    } else if (p->tdtype == CLXENT_I64) {
        memcpy(&y, p->y + 8 * r, 8);
    }
    fprintf(stderr, "  row %zu: target %lld, ignore_index %lld, lse/max in "
            "%.9g, grad_rows %.9g\n  logits:",
            r, (long long)y, (long long)p->opt.ignore_index,
            (double)p->vin[r], (double)p->g[r]);
    for (size_t c = 0; c < p->cols && c < 64; ++c)
        fprintf(stderr, " %.9g", (double)x[c]);
    fprintf(stderr, "\n  weights:");
    for (size_t c = 0; c < p->cols && c < 64; ++c)
        fprintf(stderr, " %.9g", (double)p->w[c]);
    fprintf(stderr, "\n");
    free(x);
}

static void compare(const char *what, const float *dev, const float *host,
                    size_t n, double rel, const problem *p) {
    double scale = 1.0;
    for (size_t i = 0; i < n; ++i)
        if (isfinite(host[i]) && fabs(host[i]) > scale) scale = fabs(host[i]);
    for (size_t i = 0; i < n; ++i) {
        float d = dev[i], h = host[i];
        if (!fx_close(d, h, rel * scale, 0.0)) {
            fprintf(stderr,
                    "fuzz_api: %s[%zu]: device %.9g, host %.9g (%s, %zu x "
                    "%zu %s, targets %s, reduction %d, eps %g, z %g, G %g, "
                    "D %g, flags 0x%x)\n",
                    what, i, (double)d, (double)h, ops_table[p->op].name,
                    p->rows, p->cols,
                    clxent_dtype_name(p->dtype), clxent_dtype_name(p->tdtype),
                    (int)p->opt.reduction, (double)p->opt.label_smoothing,
                    (double)p->opt.z_loss, (double)p->opt.grad_scale,
                    (double)p->opt.normalizer, p->flags);
            dump_row(p, n == p->rows * p->cols ? i / p->cols : i);
            abort();
        }
    }
}

/* Devices compute in f32, the host in double. Option values whose
 * products leave f32's range (z_loss 1e38 times a tiny grad_scale, say)
 * overflow an intermediate on the device while the host's double result
 * is finite: a documented limit of f32 arithmetic, not a bug. Values are
 * compared only where every scale factor keeps f32 intermediates finite;
 * statuses are always compared. */
static int options_f32_safe(const clxent_loss_options *o) {
    float g = fabsf(o->grad_scale);
    return o->z_loss <= 1e4f && (g == 0.0f || (g >= 1e-20f && g <= 1e20f)) &&
           (o->normalizer == 0.0f ||
            (o->normalizer >= 1e-20f && o->normalizer <= 1e20f));
}

static clxent_context *host_ctx, *dev_ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *spec = getenv("CLXENT_FUZZ_DEVICE");
    /* PoCL replaces the SIGABRT handler, and without libFuzzer's an
     * abort saves no input: put it back. */
    struct sigaction abrt;
    sigaction(SIGABRT, NULL, &abrt);
    host_ctx = open_context("host");
    dev_ctx = open_context(spec ? spec : "");
    sigaction(SIGABRT, &abrt, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    src s = {data, size};
    problem p;
    decode(&s, &p);
    if (ops_table[p.op].io & OPS_LSE_IN) real_lse(&p);
    result h, d;
    run(host_ctx, &p, &h);
    run(dev_ctx, &p, &d);
    if (h.status != d.status) {
        fprintf(stderr,
                "fuzz_api: status differs (%s, %zu x %zu %s, targets "
                "%s):\n  host:   %s: %s\n  device: %s: %s\n",
                ops_table[p.op].name, p.rows, p.cols, clxent_dtype_name(p.dtype),
                clxent_dtype_name(p.tdtype), clxent_status_name(h.status),
                h.message, clxent_status_name(d.status), d.message);
        abort();
    }
    if (h.status == CLXENT_STATUS_OK && !(p.flags & F_RAW_LOGITS) &&
        options_f32_safe(&p.opt)) {
        /* Host: double, rounded once; device: f32. 16-bit outputs may
         * round the other way. */
        double rel16 = p.dtype == CLXENT_BF16  ? 1.6e-2
                       : p.dtype == CLXENT_F16 ? 2e-3
                                               : 1e-4;
        compare("loss", d.loss, h.loss, h.loss_n, 1e-4, &p);
        compare("lse", d.lse, h.lse, p.rows, 1e-4, &p);
        compare("vec", d.vec, h.vec, p.rows, 1e-4, &p);
        compare("out", d.out, h.out, p.rows * p.cols, rel16, &p);
    }
    free_result(&h);
    free_result(&d);
    free_problem(&p);
    return 0;
}
