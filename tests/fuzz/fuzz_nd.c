/* libFuzzer harness over the tensor (_nd) operations, as fuzz_api.c is
 * over the matrix ones: the input bytes decode to an outer x classes x
 * inner shape, an operation (the first byte indexes ops.h's table, one
 * past its end is the sharded vocabulary: partial, combine, finalize and
 * backward_shard on two shards), options with the logit transforms,
 * storage types, a layout per tensor (any order of the three axes,
 * padded strides, an offset; stride 0 for some inputs), in-place
 * gradients, and values as fuzz_api decodes them. Every tensor has its
 * own buffer, filled with 0x7f bytes around its elements. The call runs on
 * the host backend and on the OpenCL device (CLXENT_FUZZ_DEVICE, default:
 * the empty spec; the sharded steps run on the device against the host's
 * unsharded call); statuses must be equal, no byte outside an output's
 * elements may change, and on success with quantized inputs the outputs
 * must agree within tolerance. Any difference aborts. */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <clxent/clxent.h>

#include "commands.h" /* cli_load, cli_store */
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
    uint64_t lcg;
} src;

/* Past the input's end a fixed generator goes on, so that large shapes
 * still get varied values. */
static uint8_t u8(src *s) {
    if (!s->n) {
        s->lcg = s->lcg * 6364136223846793005u + 1442695040888963407u;
        return (uint8_t)(s->lcg >> 56);
    }
    --s->n;
    return *s->p++;
}
static uint32_t u32(src *s) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= (uint32_t)u8(s) << (8 * i);
    return v;
}
static float raw_f32(src *s) {
    uint32_t b = u32(s);
    float f;
    memcpy(&f, &b, 4);
    return f;
}
/* fuzz_api's grid: small values and the special cases a loss meets. */
static float quantized(uint8_t b) {
    static const float special[] = {6e-8f, 3e4f, -3e4f, 1e-40f, -INFINITY,
                                    INFINITY, NAN};
    return b >= 0xf9 ? special[b - 0xf9] : ((float)b - 128.0f) / 8.0f;
}

enum {
    F_RAW_LOGITS = 1, F_RAW_OPTIONS = 2, F_WEIGHTS = 4, F_GRAD_ROWS = 8,
    F_LSE = 16, F_DEFERRED = 32, F_RAW_TARGETS = 64, F_ALL_IGNORED_ZERO = 128,
    F_ZOUT = 256, F_IN_PLACE = 512, F_SHORT = 1024, F_OTHER_ODT = 2048
};
#define OP_SHARDED OPS_COUNT

/* The tensors of one call; every one has its own buffer. */
enum { T_X, T_PROBS, T_Y, T_VIN, T_GR, T_LOSS, T_LSE, T_VEC, T_Z, T_OUT,
       T_COUNT };
static const char *const t_name[T_COUNT] = {
    "x", "probs", "targets", "vec_in", "grad_rows", "loss", "lse", "vec_out",
    "z_loss_out", "out"};

typedef struct lay {
    size_t off, so, sc, si;
} lay;

typedef struct slot {
    size_t O, C, I;
    lay L;
    clxent_dtype dt;
    size_t bytes;
    unsigned char *img; /* the buffer's bytes before the call */
} slot;

typedef struct problem {
    int op;
    size_t O, C, I, split; /* split: shard 0's classes */
    clxent_dtype dt, tdt;  /* tdt: I32, I64 or dt (probabilities) */
    unsigned flags;
    clxent_options opt;
    slot t[T_COUNT];
    float w[604];
    size_t woff;
} problem;

static size_t at(const lay *L, size_t o, size_t c, size_t i) {
    return L->off + o * L->so + c * L->sc + i * L->si;
}

/* Axes 0 (outer), 1 (classes), 2 (inner) nested in one of six orders
 * with padding; inputs may also repeat a row (stride 0). */
static lay decode_lay(src *s, size_t O, size_t C, size_t I, int input) {
    static const unsigned char order[6][3] = {{2, 1, 0}, {1, 2, 0}, {0, 1, 2},
                                              {1, 0, 2}, {2, 0, 1}, {0, 2, 1}};
    uint8_t a = u8(s), b = u8(s);
    size_t ext[3] = {O, C, I}, st[3], next = 1 + (b & 3) / 3;
    for (int k = 0; k < 3; ++k) {
        size_t ax = order[(a & 7) % 6][k];
        st[ax] = next;
        next = next * (ext[ax] ? ext[ax] : 1) + ((b >> (2 + 2 * k)) & 3) / 2;
    }
    lay L = {(a >> 3) % 4, st[0], st[1], st[2]};
    if (input && a >= 0xf0) L.si = 0;
    if (input && a >= 0xe0 && a < 0xf0) L.so = 0;
    return L;
}

static void make_slot(slot *t, size_t O, size_t C, size_t I, lay L,
                      clxent_dtype dt, int shrink) {
    *t = (slot){O, C, I, L, dt, 0, NULL};
    size_t es = clxent_dtype_size(dt);
    /* an empty tensor's buffer as if outer were 1: a shard's columns of
     * it start inside */
    size_t n = C && I ? at(&L, O ? O - 1 : 0, C - 1, I - 1) + 1 : L.off;
    if (shrink && n) --n;
    t->bytes = (n ? n : 1) * es;
    t->img = malloc(t->bytes);
    if (!t->img) abort();
    memset(t->img, 0x7f, t->bytes);
}

/* Element (o, c, i) of t's buffer image, where the buffer holds it. */
static void put(slot *t, size_t o, size_t c, size_t i, float v) {
    size_t a = at(&t->L, o, c, i);
    if (a < t->bytes / clxent_dtype_size(t->dt))
        cli_store(t->img, a, t->dt, v);
}

static size_t per_row_size(const problem *p) {
    return p->opt.loss.reduction == CLXENT_REDUCTION_NONE;
}

static void decode_options(src *s, problem *p) {
    clxent_loss_options *o = &p->opt.loss;
    uint8_t ig = u8(s);
    o->ignore_index = ig == 0 || ig > p->C + 1 ? -100
                      : ig == p->C + 1         ? (int64_t)u32(s) << 8
                                               : ig - 1;
    if (p->tdt == p->dt && ig != 0xff) o->ignore_index = -100;
    if (p->flags & F_RAW_OPTIONS) {
        o->reduction = (clxent_reduction)(int8_t)u8(s);
        o->label_smoothing = raw_f32(s);
        o->z_loss = raw_f32(s);
        o->grad_scale = raw_f32(s);
        o->normalizer = raw_f32(s);
        o->all_ignored_zero = (int8_t)u8(s);
        o->in_place = (int8_t)u8(s);
        o->target_check = (clxent_target_check)(int8_t)u8(s);
        p->opt.softcap = raw_f32(s);
        p->opt.logit_scale = raw_f32(s);
        p->opt.validate_only = (int8_t)u8(s);
        return;
    }
    o->reduction = (clxent_reduction)(u8(s) % 3);
    uint8_t e = u8(s), z = u8(s), nb, cap, sc;
    o->label_smoothing = e < 128 ? 0.0f : (float)(e - 128) / 127.0f;
    o->z_loss = z < 128 ? 0.0f : (float)(z - 128) / 512.0f;
    o->grad_scale = ((float)u8(s) - 128.0f) / 16.0f;
    nb = u8(s);
    o->normalizer = nb < 128 ? 0.0f : (float)(nb - 127) / 4.0f;
    o->all_ignored_zero = (p->flags & F_ALL_IGNORED_ZERO) != 0;
    o->in_place = (p->flags & F_IN_PLACE) != 0;
    o->target_check =
        p->flags & F_DEFERRED ? CLXENT_CHECK_DEFERRED : CLXENT_CHECK_SYNC;
    cap = u8(s);
    sc = u8(s);
    p->opt.softcap = cap < 160 ? 0.0f : (float)(cap - 159) / 4.0f;
    p->opt.logit_scale = sc < 160 ? 1.0f : (float)(sc - 140) / 40.0f;
    if (p->op == OPS_NLL || p->op == OPS_NLL_BACKWARD) { /* NLL takes none */
        o->label_smoothing = o->z_loss = 0.0f;
        p->opt.softcap = 0.0f;
        p->opt.logit_scale = 1.0f;
    }
}

static void decode(src *s, problem *p) {
    memset(p, 0, sizeof *p);
    s->lcg = 0x9e3779b97f4a7c15u;
    p->op = u8(s) % (OPS_COUNT + 1);
    unsigned io = p->op == OP_SHARDED ? OPS_TARGETS : ops_table[p->op].io;
    uint8_t ob = u8(s), cb = u8(s), ib = u8(s);
    p->O = ob == 0 ? 0 : 1 + ob % 3;
    if (cb & 0x80) { /* other kernels: several work-groups a row */
        p->C = 1 + ((cb & 0x7fu) | (size_t)u8(s) << 7) % 600;
        p->I = 1 + ib % 3;
    } else {
        p->C = 1 + cb % 70;
        p->I = 1 + ib % 24;
    }
    size_t O = p->O, C = p->C, I = p->I;
    p->split = C > 1 ? 1 + u8(s) % (C - 1) : 1;
    p->dt = (clxent_dtype)(1 + u8(s) % 3);
    int kind = u8(s) % 3;
    p->tdt = kind == 0                                ? CLXENT_I32
             : kind == 1 || !(io & OPS_TARGETS)       ? CLXENT_I64
                                                      : p->dt;
    p->flags = u8(s) | (unsigned)u8(s) << 8;
    clxent_options_init(&p->opt);
    decode_options(s, p);
    clxent_dtype odt = p->flags & F_OTHER_ODT && io & OPS_MAT_OUT
                           ? (clxent_dtype)(1 + u8(s) % 3)
                           : p->dt;
    int shrink = p->flags & F_SHORT ? u8(s) % T_COUNT : -1;
    /* backward's lse must be the real one for each row: no repeats */
    int vin_input = p->op != OPS_CE_BACKWARD;
    size_t LO = per_row_size(p) ? O : 1, LI = per_row_size(p) ? I : 1;
    struct { size_t O, C, I; int input; clxent_dtype dt; } sh[T_COUNT] = {
        {O, C, I, 1, p->dt},         {O, C, I, 1, p->dt},
        {O, 1, I, 1, p->tdt == p->dt ? CLXENT_I64 : p->tdt},
        {O, 1, I, vin_input, CLXENT_F32}, {O, 1, I, 1, CLXENT_F32},
        {LO, 1, LI, 0, CLXENT_F32},   {O, 1, I, 0, CLXENT_F32},
        {O, 1, I, 0, CLXENT_F32},    {LO, 1, LI, 0, CLXENT_F32},
        {O, C, I, 0, odt}};
    for (int k = 0; k < T_COUNT; ++k)
        make_slot(&p->t[k], sh[k].O, sh[k].C, sh[k].I,
                  decode_lay(s, sh[k].O, sh[k].C, sh[k].I, sh[k].input),
                  sh[k].dt, k == shrink);

    slot *x = &p->t[T_X], *pr = &p->t[T_PROBS], *y = &p->t[T_Y];
    size_t es = clxent_dtype_size(p->dt);
    for (size_t o = 0; o < O; ++o)
        for (size_t c = 0; c < C; ++c)
            for (size_t i = 0; i < I; ++i) {
                size_t ax = at(&x->L, o, c, i);
                uint32_t bits = p->flags & F_RAW_LOGITS ? u32(s) : 0;
                if (p->flags & F_RAW_LOGITS && ax < x->bytes / es)
                    memcpy(x->img + ax * es, &bits, es);
                else if (!(p->flags & F_RAW_LOGITS))
                    put(x, o, c, i, quantized(u8(s)));
                put(pr, o, c, i, (float)u8(s) / 255.0f);
            }
    for (size_t o = 0; o < O; ++o)
        for (size_t i = 0; i < I; ++i) {
            int64_t v;
            if (p->flags & F_RAW_TARGETS) {
                v = (int64_t)((uint64_t)u32(s) << 32 | u32(s));
            } else {
                uint8_t b = u8(s);
                size_t wide = C > 250 ? (size_t)u8(s) << 8 : 0;
                v = b == 0xff   ? -100
                    : b == 0xfe ? (int64_t)C
                    : b == 0xfd ? -1
                    : b == 0xfc ? p->opt.loss.ignore_index
                                : (int64_t)((b | wide) % C);
            }
            size_t ay = at(&y->L, o, 0, i), ye = clxent_dtype_size(y->dt);
            int32_t v32 = (int32_t)v;
            if (ay < y->bytes / ye)
                memcpy(y->img + ay * ye, ye == 4 ? (void *)&v32 : (void *)&v,
                       ye);
            put(&p->t[T_GR], o, 0, i, ((float)u8(s) - 128.0f) / 32.0f);
            put(&p->t[T_VIN], o, 0, i, quantized(u8(s)));
        }
    p->woff = u8(s) % 3;
    for (size_t c = 0; c < C; ++c) /* > 0: see fuzz_api */
        p->w[p->woff + c] = (float)(u8(s) + 1) / 32.0f;
}

static void free_problem(problem *p) {
    for (int k = 0; k < T_COUNT; ++k) free(p->t[k].img);
}

/* The transformed logit, in double as the host computes it. */
static double xform(const clxent_options *o, double v) {
    double u = o->logit_scale * v;
    return o->softcap > 0.0f ? o->softcap * tanh(u / o->softcap) : u;
}

/* Backward takes the forward's saved lse: as fuzz_api, the real one (of
 * the transformed logits), rounded to f32 as the forward stores it. */
static void real_lse(problem *p) {
    slot *x = &p->t[T_X];
    size_t es = clxent_dtype_size(p->dt);
    for (size_t o = 0; o < p->O; ++o)
        for (size_t i = 0; i < p->I; ++i) {
            double m = -INFINITY, sum = 0.0, row[600];
            for (size_t c = 0; c < p->C; ++c) {
                size_t a = at(&x->L, o, c, i);
                row[c] = a < x->bytes / es
                             ? xform(&p->opt, cli_load(x->img, a, p->dt))
                             : 0.0;
                if (isnan(m) || isnan(row[c])) m = NAN;
                else if (row[c] > m) m = row[c];
            }
            for (size_t c = 0; c < p->C; ++c) sum += exp(row[c] - m);
            put(&p->t[T_VIN], o, 0, i, (float)(m + log(sum)));
        }
}

/* ---- running one problem on one context ---- */

typedef struct result {
    clxent_status status;
    char message[512];
    unsigned char *raw[T_COUNT]; /* every buffer after the call */
} result;

static clxent_tensor tensor(const slot *t, clxent_buffer *b) {
    clxent_tensor v = {b, t->L.off, t->O, t->C, t->I, t->L.so, t->L.sc,
                       t->L.si, t->dt, 0, {0}};
    return v;
}
static clxent_tensor absent(void) {
    clxent_tensor v;
    memset(&v, 0, sizeof v);
    v.dtype = CLXENT_F32;
    return v;
}
/* shard k's classes [c0, c0 + n) of a logits-shaped tensor */
static clxent_tensor columns(clxent_tensor t, size_t c0, size_t n) {
    t.offset += c0 * t.class_stride;
    t.classes = n;
    return t;
}

/* Shard k's part of the logits, targets and weights. */
typedef struct shard_in {
    clxent_tensor x;
    clxent_tensor_targets t;
    clxent_vector w;
} shard_in;

static shard_in shard_of(const ops_nd_args *a, size_t c0, size_t n) {
    shard_in s = {columns(*a->x, c0, n), *a->targets, *a->weights};
    if (s.t.probs.buffer) s.t.probs = columns(s.t.probs, c0, n);
    s.w.offset += c0;
    s.w.length = n;
    return s;
}

/* The three steps of the sharded vocabulary on records r. */
static clxent_status steps(clxent_context *ctx, const problem *p,
                           const ops_nd_args *a, const clxent_options *opt,
                           const clxent_shard *sh, int shards,
                           const clxent_tensor *r) {
    size_t n[2] = {p->split, p->C - p->split};
    clxent_status st = CLXENT_STATUS_OK;
    for (int k = 0; k < shards && !st; ++k) {
        shard_in s = shard_of(a, (size_t)sh[k].class_begin, n[k]);
        st = clxent_cross_entropy_partial_nd(ctx, &s.x, &s.t, &s.w, &sh[k],
                                             opt, &r[k], NULL);
    }
    if (!st && shards == 2 && !opt->validate_only)
        st = clxent_partial_combine(ctx, &r[0], &r[1], &r[0], NULL);
    if (!st)
        st = clxent_cross_entropy_finalize_nd(ctx, &r[0], a->targets, &sh[0],
                                              opt, a->loss, a->vec_out,
                                              a->z_loss_out, NULL);
    for (int k = 0; k < shards && !st; ++k) {
        size_t c0 = (size_t)sh[k].class_begin;
        shard_in s = shard_of(a, c0, n[k]);
        clxent_tensor g = columns(*a->out, c0, n[k]);
        st = clxent_cross_entropy_backward_shard_nd(
            ctx, &s.x, &s.t, &s.w, &sh[k], opt, &r[0], a->grad_rows, &g,
            NULL);
    }
    return st;
}

/* The sharded steps on one context, two shards (one when C is 1). */
static clxent_status run_sharded(clxent_context *ctx, const problem *p,
                                 const ops_nd_args *a) {
    size_t R = p->O * p->I;
    int shards = p->split < p->C ? 2 : 1;
    clxent_shard sh[2] = {{0, (int64_t)p->C}, {(int64_t)p->split,
                                                (int64_t)p->C}};
    clxent_buffer *rec[2] = {NULL, NULL};
    clxent_tensor r[2];
    for (int k = 0; k < shards; ++k) {
        if (clxent_buffer_create(ctx, (R ? R : 1) * 32, &rec[k])) abort();
        r[k] = clxent_tensor_of(rec[k], p->O, CLXENT_PARTIAL_FLOATS, p->I,
                                CLXENT_F32);
    }
    /* Validate the whole sequence first, as a caller would (what
     * validate_only is for): the unsharded call checks every argument
     * before the targets, the steps one by one would not. */
    clxent_options check = *a->options;
    check.validate_only = 1;
    clxent_status st = CLXENT_STATUS_OK;
    for (int pass = 0; pass < 2 && !st; ++pass)
        st = steps(ctx, p, a, pass ? a->options : &check, sh, shards, r);
    if (!st) st = clxent_finish(ctx);
    clxent_buffer_release(rec[0]);
    clxent_buffer_release(rec[1]);
    return st;
}

/* Whether the op writes tensor k (the others must keep every byte). */
static int writes(const problem *p, int k) {
    unsigned io = p->op == OP_SHARDED ? ops_table[OPS_CE_FUSED].io
                                      : ops_table[p->op].io;
    int in_place = (p->flags & F_IN_PLACE) != 0;
    switch (k) {
    case T_X: return in_place && (io & (OPS_MAT_OUT | OPS_GRAD));
    case T_OUT: return !in_place && (io & (OPS_MAT_OUT | OPS_GRAD));
    case T_LOSS: return (io & OPS_LOSS) != 0;
    case T_LSE: return (io & OPS_LSE_OUT) && (p->flags & F_LSE);
    case T_Z: return (io & OPS_LSE_OUT) && (p->flags & F_ZOUT);
    case T_VEC: return (io & OPS_VEC_OUT) != 0;
    }
    return 0;
}

static void run(clxent_context *ctx, const problem *p, int sharded,
                result *res) {
    clxent_buffer *b[T_COUNT + 1] = {0};
    clxent_tensor t[T_COUNT];
    memset(res, 0, sizeof *res);
    for (int k = 0; k < T_COUNT; ++k) {
        if (clxent_buffer_create(ctx, p->t[k].bytes, &b[k]) ||
            clxent_buffer_write(ctx, b[k], 0, p->t[k].bytes, p->t[k].img)) {
            fprintf(stderr, "fuzz_nd: buffers: %s\n",
                    clxent_context_message(ctx));
            abort();
        }
        t[k] = tensor(&p->t[k], b[k]);
    }
    if (clxent_buffer_create(ctx, 604 * 4, &b[T_COUNT]) ||
        clxent_buffer_write(ctx, b[T_COUNT], 0, 604 * 4, p->w))
        abort();
    clxent_tensor_targets tg = {absent(), absent()};
    if (p->tdt == p->dt) tg.probs = t[T_PROBS];
    else tg.indices = t[T_Y];
    clxent_vector w = {p->flags & F_WEIGHTS ? b[T_COUNT] : NULL, p->woff,
                       p->C, CLXENT_F32};
    int per_row = (p->flags & F_GRAD_ROWS) &&
                  (p->flags & F_RAW_OPTIONS || per_row_size(p));
    clxent_tensor gr = per_row ? t[T_GR] : absent();
    clxent_tensor lse = p->flags & F_LSE ? t[T_LSE] : absent();
    clxent_tensor z = p->flags & F_ZOUT ? t[T_Z] : absent();
    int op = p->op == OP_SHARDED ? OPS_CE_FUSED : p->op;
    ops_nd_args args = {&t[T_X], &tg, &t[T_Y], &w, &p->opt, &gr, &t[T_VIN],
                        &t[T_LOSS],
                        ops_table[op].io & OPS_LSE_OUT ? &lse : &t[T_VEC],
                        &z, p->flags & F_IN_PLACE ? &t[T_X] : &t[T_OUT],
                        NULL};
    clxent_status st =
        p->op == OP_SHARDED && sharded
            ? run_sharded(ctx, p, &args)
            : ops_table[op].enqueue_nd(ctx, &args);
    if (st == CLXENT_STATUS_OK) st = clxent_finish(ctx);
    res->status = st;
    snprintf(res->message, sizeof res->message, "%s",
             clxent_context_message(ctx));
    /* An error must not leave a pending one behind (an earlier sharded
     * step's deferred check may). */
    if (st && clxent_finish(ctx) != CLXENT_STATUS_OK && p->op != OP_SHARDED) {
        fprintf(stderr, "fuzz_nd: finish after %s: %s\n",
                clxent_status_name(st), clxent_context_message(ctx));
        abort();
    }
    for (int k = 0; k < T_COUNT; ++k) {
        res->raw[k] = malloc(p->t[k].bytes);
        if (!res->raw[k] ||
            clxent_buffer_read(ctx, b[k], 0, p->t[k].bytes, res->raw[k]))
            abort();
    }
    for (int k = 0; k <= T_COUNT; ++k) clxent_buffer_release(b[k]);
}

static void free_result(result *r) {
    for (int k = 0; k < T_COUNT; ++k) free(r->raw[k]);
}

/* ---- comparison ---- */

static const char *const op_names[OPS_COUNT + 1] = {
    "row_max", "row_expsum", "log_softmax", "softmax", "nll", "nll_bwd",
    "ce_forward", "ce_backward", "ce_fused", "copy", "sharded"};

static void describe(const problem *p) {
    const clxent_loss_options *o = &p->opt.loss;
    fprintf(stderr,
            "  %s_nd, (%zu, %zu, %zu) %s, targets %s, flags 0x%x, split %zu\n"
            "  reduction %d ignore_index %lld eps %g z %g G %g D %g "
            "aiz %d in_place %d check %d cap %g scale %g validate %d\n",
            op_names[p->op], p->O, p->C, p->I, clxent_dtype_name(p->dt),
            clxent_dtype_name(p->tdt), p->flags, p->split, (int)o->reduction,
            (long long)o->ignore_index, (double)o->label_smoothing,
            (double)o->z_loss, (double)o->grad_scale, (double)o->normalizer,
            o->all_ignored_zero, o->in_place, (int)o->target_check,
            (double)p->opt.softcap, (double)p->opt.logit_scale,
            p->opt.validate_only);
    for (int k = 0; k < T_COUNT; ++k) {
        const slot *t = &p->t[k];
        fprintf(stderr, "  %-10s %zux%zux%zu %s off %zu strides %zu %zu %zu"
                " (%zu bytes)\n", t_name[k], t->O, t->C, t->I,
                clxent_dtype_name(t->dt), t->L.off, t->L.so, t->L.sc,
                t->L.si, t->bytes);
    }
}

/* The row (o, i)'s logits and target, to make a mismatch readable. */
static void dump_row(const problem *p, size_t o, size_t i) {
    const slot *x = &p->t[T_X], *y = &p->t[T_Y];
    size_t es = clxent_dtype_size(p->dt), ay = at(&y->L, o, 0, i);
    int64_t v = 0;
    if (p->tdt != p->dt && ay < y->bytes / clxent_dtype_size(y->dt)) {
        int32_t v32;
        if (y->dt == CLXENT_I32) memcpy(&v32, y->img + 4 * ay, 4), v = v32;
        else memcpy(&v, y->img + 8 * ay, 8);
    }
    fprintf(stderr, "  row (%zu, %zu): target %lld, logits:", o, i,
            (long long)v);
    for (size_t c = 0; c < p->C && c < 64; ++c) {
        size_t a = at(&x->L, o, c, i);
        if (a < x->bytes / es)
            fprintf(stderr, " %.9g", (double)cli_load(x->img, a, p->dt));
    }
    fprintf(stderr, "\n");
}

static void die(const problem *p) {
    describe(p);
    abort(); /* libFuzzer keeps the input */
}

/* Devices compute in f32: fuzz_api's ranges, and the transforms' too. */
static int options_f32_safe(const clxent_options *opt) {
    const clxent_loss_options *o = &opt->loss;
    float g = fabsf(o->grad_scale);
    return o->z_loss <= 1e4f && (g == 0.0f || (g >= 1e-20f && g <= 1e20f)) &&
           (o->normalizer == 0.0f ||
            (o->normalizer >= 1e-20f && o->normalizer <= 1e20f)) &&
           opt->logit_scale >= 1e-6f && opt->logit_scale <= 1e6f &&
           (opt->softcap == 0.0f || opt->softcap >= 1e-6f);
}

/* The device rounds x' = transform(x) to f32: a few ulps of the largest
 * |x'| on every logit, which the host's double does not have. */
static double transform_error(const problem *p) {
    if (p->opt.softcap == 0.0f && p->opt.logit_scale == 1.0f) return 0.0;
    const slot *x = &p->t[T_X];
    size_t n = x->bytes / clxent_dtype_size(p->dt);
    double m = 0.0;
    for (size_t a = 0; a < n; ++a) {
        double v = fabs(xform(&p->opt, cli_load(x->img, a, p->dt)));
        if (isfinite(v) && v > m) m = v;
    }
    return 4.0 * 0x1p-24 * m;
}

/* Tensor k: its output elements within tol + rel * (the host's largest
 * finite |value|, at least 1) when values, every other byte as before. */
static void compare_slot(const problem *p, int k, const result *h,
                         const result *d, int values, double tol) {
    const slot *t = &p->t[k];
    size_t es = clxent_dtype_size(t->dt), n = t->bytes / es;
    unsigned char *mine = calloc(n + 1, 1);
    if (!mine) abort();
    double rel = t->dt == CLXENT_BF16 ? 1.6e-2
                 : t->dt == CLXENT_F16 ? 2e-3 : 1e-4, scale = 1.0;
    for (int pass = 0; pass < 2 && writes(p, k); ++pass)
        for (size_t o = 0; o < t->O; ++o)
            for (size_t c = 0; c < t->C; ++c)
                for (size_t i = 0; i < t->I; ++i) {
                    size_t a = at(&t->L, o, c, i);
                    if (a >= n) continue;
                    mine[a] = 1;
                    float hv = cli_load(h->raw[k], a, t->dt);
                    float dv = cli_load(d->raw[k], a, t->dt);
                    if (pass == 0 && isfinite(hv))
                        scale = fmax(scale, fabs(hv));
                    if (pass == 0 || !values ||
                        fx_close(dv, hv, tol + rel * scale, 0.0))
                        continue;
                    fprintf(stderr, "fuzz_nd: %s (%zu, %zu, %zu): device "
                            "%.9g, host %.9g (tol %g)\n", t_name[k], o, c,
                            i, (double)dv, (double)hv, tol + rel * scale);
                    dump_row(p, o, i);
                    die(p);
                }
    for (size_t a = 0; a < n * es; ++a)
        if (!mine[a / es] &&
            (d->raw[k][a] != t->img[a] || h->raw[k][a] != t->img[a])) {
            fprintf(stderr, "fuzz_nd: %s: byte %zu outside the output "
                    "elements changed: device %u, host %u, was %u\n",
                    t_name[k], a, d->raw[k][a], h->raw[k][a], t->img[a]);
            die(p);
        }
    free(mine);
}

static void compare(const problem *p, const result *h, const result *d) {
    int values = !(p->flags & F_RAW_LOGITS) && options_f32_safe(&p->opt);
    double xt = transform_error(p), wmax = 1.0;
    for (size_t c = 0; c < p->C; ++c) wmax = fmax(wmax, p->w[p->woff + c]);
    /* x' errors of one ulp-scale move a loss by about as much, the
     * gradient by that times the chain rule's factors */
    const clxent_loss_options *o = &p->opt.loss;
    double zf = 1.0 + 2.0 * o->z_loss * (xt / 0x1p-24);
    double lt = xt * wmax * zf * (double)(p->O * p->I + 1);
    double gt = xt * wmax * zf * fmax(1.0, p->opt.logit_scale) *
                fmax(1.0, fabs(o->grad_scale)) * 4.0;
    for (int k = 0; k < T_COUNT; ++k)
        compare_slot(p, k, h, d, values, k == T_OUT || k == T_X ? gt : lt);
}

/* Nothing written on a refusal: the host always, the device unless the
 * target check was deferred (then bad rows get NaN, see clxent.h). */
static void unchanged(const problem *p, const result *r, const char *who) {
    for (int k = 0; k < T_COUNT; ++k)
        if (memcmp(r->raw[k], p->t[k].img, p->t[k].bytes)) {
            fprintf(stderr, "fuzz_nd: %s: %s wrote although the call "
                    "failed (%s)\n", who, t_name[k],
                    clxent_status_name(r->status));
            die(p);
        }
}

static clxent_context *host_ctx, *dev_ctx;
static int show;

static clxent_context *open_context(const char *spec) {
    clxent_context *ctx = NULL;
    if (clxent_context_create(spec, &ctx) != CLXENT_STATUS_OK) {
        fprintf(stderr, "fuzz_nd: context %s: %s\n", spec,
                clxent_context_message(ctx));
        abort();
    }
    return ctx;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *spec = getenv("CLXENT_FUZZ_DEVICE");
    show = getenv("FUZZ_ND_SHOW") != NULL;
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
    src s = {data, size, 0};
    problem p;
    decode(&s, &p);
    if (p.op == OPS_CE_BACKWARD) real_lse(&p);
    if (show) describe(&p); /* FUZZ_ND_SHOW=1: what an input decodes to */
    result h, d;
    run(host_ctx, &p, 0, &h);
    run(dev_ctx, &p, 1, &d);
    if (show)
        fprintf(stderr, "  host %s, device %s: %s\n",
                clxent_status_name(h.status), clxent_status_name(d.status),
                d.message);
    /* The sharded steps check their arguments in another order than the
     * unsharded call: with several faults, only success must agree. */
    int loose = p.op == OP_SHARDED &&
                (p.flags & (F_RAW_OPTIONS | F_SHORT | F_RAW_TARGETS));
    if (loose ? !h.status != !d.status : h.status != d.status) {
        fprintf(stderr, "fuzz_nd: status differs:\n  host:   %s: %s\n"
                "  device: %s: %s\n", clxent_status_name(h.status),
                h.message, clxent_status_name(d.status), d.message);
        die(&p);
    }
    if (h.status == CLXENT_STATUS_OK) {
        compare(&p, &h, &d);
    } else {
        unchanged(&p, &h, "host");
        if (p.opt.loss.target_check != CLXENT_CHECK_DEFERRED)
            unchanged(&p, &d, "device");
    }
    free_result(&h);
    free_result(&d);
    free_problem(&p);
    return 0;
}
