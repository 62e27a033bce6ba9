/* Bad input over tensors (the _nd functions), exhaustively: each tensor
 * call with each bad argument that applies to it, on the host backend and
 * on the OpenCL device, under test_bad_input.c's contract: its specific
 * status with a message naming the argument, nothing written (every
 * buffer compared with a snapshot), and the context usable after. */
#include "fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An O x C x I = 2 x 3 x 4 problem, each tensor call with each fault
 * that applies to it. */
enum { NO = 2, NC = 3, NI = 4, NR = NO * NI, NCAP = 4 * NO * NC * NI,
       NRCAP = 2 * NR };

/* Tensor slots. */
enum {
    T_X, T_OUT, T_GRAD, T_P, T_Y, T_LOSS, T_LSEO, T_LSEI, T_VIN, T_VOUT,
    T_GR, T_Z, T_OPT, T_TG, T_COUNT
};
static const char *t_slot_name[T_COUNT] = {
    "x", "out", "grad", "targets.probs", "targets", "loss", "lse", "lse",
    "row_max", "out", "grad_rows", "z_loss_out", "options", "targets"};

typedef enum {
    N_ROW_MAX, N_EXPSUM, N_LSM, N_SM, N_NLL, N_NLLB, N_FWD, N_BWD, N_FUSED,
    N_COPY, N_COUNT
} nd_op;
static const char *nd_fn[N_COUNT] = {
    "clxent_row_max_nd", "clxent_row_expsum_nd", "clxent_log_softmax_nd",
    "clxent_softmax_nd", "clxent_nll_loss_nd", "clxent_nll_loss_backward_nd",
    "clxent_cross_entropy_forward_nd", "clxent_cross_entropy_backward_nd",
    "clxent_cross_entropy_nd", "clxent_copy_nd"};
#define TB(s) (1u << (s))
static const unsigned nd_slots[N_COUNT] = {
    [N_ROW_MAX] = TB(T_X) | TB(T_VOUT),
    [N_EXPSUM] = TB(T_X) | TB(T_VIN) | TB(T_VOUT),
    [N_LSM] = TB(T_X) | TB(T_OUT) | TB(T_OPT),
    [N_SM] = TB(T_X) | TB(T_OUT) | TB(T_OPT),
    [N_NLL] = TB(T_X) | TB(T_Y) | TB(T_OPT) | TB(T_LOSS),
    [N_NLLB] = TB(T_X) | TB(T_Y) | TB(T_OPT) | TB(T_GR) | TB(T_GRAD),
    [N_FWD] = TB(T_X) | TB(T_Y) | TB(T_P) | TB(T_TG) | TB(T_OPT) |
              TB(T_LOSS) | TB(T_LSEO) | TB(T_Z),
    [N_BWD] = TB(T_X) | TB(T_Y) | TB(T_P) | TB(T_TG) | TB(T_OPT) |
              TB(T_LSEI) | TB(T_GR) | TB(T_GRAD),
    [N_FUSED] = TB(T_X) | TB(T_Y) | TB(T_P) | TB(T_TG) | TB(T_OPT) |
                TB(T_GR) | TB(T_LOSS) | TB(T_LSEO) | TB(T_Z) | TB(T_GRAD),
    [N_COPY] = TB(T_X) | TB(T_OUT)};
#define T_OUTPUTS                                                              \
    (TB(T_OUT) | TB(T_GRAD) | TB(T_LOSS) | TB(T_LSEO) | TB(T_VOUT) | TB(T_Z))
#define T_FULL (TB(T_X) | TB(T_OUT) | TB(T_GRAD) | TB(T_P))
#define T_ROWS                                                                 \
    (TB(T_Y) | TB(T_LOSS) | TB(T_LSEO) | TB(T_LSEI) | TB(T_VIN) |             \
     TB(T_VOUT) | TB(T_GR) | TB(T_Z))

enum { NB_X, NB_P, NB_Y, NB_W, NB_LOSS, NB_LSE, NB_GRAD, NB_OUT, NB_VIN,
       NB_VOUT, NB_GR, NB_Z, NB_TINY, NB_COUNT };

typedef struct nd_env {
    clxent_context *ctx;
    clxent_buffer *b[NB_COUNT];
    unsigned char *snapshot[NB_COUNT];
    clxent_tensor t[T_COUNT - 2];
    clxent_tensor_targets tg;
    clxent_vector w;
    clxent_options opt;
    int null_slot;
    int device;
} nd_env;

static nd_env NE;

static clxent_tensor nd_full(clxent_buffer *b) {
    return clxent_tensor_of(b, NO, NC, NI, CLXENT_F32);
}
static clxent_tensor nd_rows(clxent_buffer *b, clxent_dtype dt) {
    return clxent_rows_of(b, NO, NI, dt);
}
static clxent_tensor nd_scalar(clxent_buffer *b) {
    return clxent_rows_of(b, 1, 1, CLXENT_F32);
}
static clxent_tensor nd_absent(void) {
    clxent_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = CLXENT_F32;
    return t;
}

static void nd_reset(nd_env *e) {
    e->null_slot = -1;
    e->t[T_X] = nd_full(e->b[NB_X]);
    e->t[T_OUT] = nd_full(e->b[NB_OUT]);
    e->t[T_GRAD] = nd_full(e->b[NB_GRAD]);
    e->t[T_P] = nd_absent();
    e->t[T_Y] = nd_rows(e->b[NB_Y], CLXENT_I32);
    e->t[T_LOSS] = nd_scalar(e->b[NB_LOSS]);
    e->t[T_LSEO] = nd_rows(e->b[NB_LSE], CLXENT_F32);
    e->t[T_LSEI] = nd_rows(e->b[NB_VIN], CLXENT_F32);
    e->t[T_VIN] = nd_rows(e->b[NB_VIN], CLXENT_F32);
    e->t[T_VOUT] = nd_rows(e->b[NB_VOUT], CLXENT_F32);
    e->t[T_GR] = nd_absent();
    e->t[T_Z] = nd_scalar(e->b[NB_Z]);
    e->w = clxent_vector_of(e->b[NB_W], NC, CLXENT_F32);
    clxent_options_init(&e->opt);
}

/* reduction none: the loss and the z-loss part per row, grad_rows. */
static void nd_per_row(nd_env *e) {
    e->opt.loss.reduction = CLXENT_REDUCTION_NONE;
    e->t[T_LOSS] = nd_rows(e->b[NB_LOSS], CLXENT_F32);
    e->t[T_Z] = nd_rows(e->b[NB_Z], CLXENT_F32);
    e->t[T_GR] = nd_rows(e->b[NB_GR], CLXENT_F32);
}

/* The slot's tensor, with what it needs to be in use. */
static clxent_tensor *nd_slot(nd_env *e, int s) {
    if (s == T_P) e->t[T_P] = nd_full(e->b[NB_P]);
    if (s == T_GR) nd_per_row(e);
    return &e->t[s];
}

#define NARG(s) (e->null_slot == (s) ? NULL : &e->t[s])

static clxent_status nd_call(nd_env *e, nd_op op) {
    clxent_context *ctx = e->ctx;
    clxent_tensor_targets tg;
    tg.probs = e->t[T_P];
    tg.indices = e->t[T_P].buffer ? nd_absent() : e->t[T_Y];
    if (e->null_slot == T_Y + 100) tg.indices = nd_absent(); /* neither */
    if (e->null_slot == T_P + 100) tg.indices = e->t[T_Y];   /* both */
    const clxent_tensor_targets *tgp = e->null_slot == T_TG ? NULL : &tg;
    const clxent_options *o = e->null_slot == T_OPT ? NULL : &e->opt;
    switch (op) {
    case N_ROW_MAX: return clxent_row_max_nd(ctx, NARG(T_X), NARG(T_VOUT), NULL);
    case N_EXPSUM:
        return clxent_row_expsum_nd(ctx, NARG(T_X), NARG(T_VIN), NARG(T_VOUT),
                                    NULL);
    case N_LSM: return clxent_log_softmax_nd(ctx, NARG(T_X), o, NARG(T_OUT), NULL);
    case N_SM: return clxent_softmax_nd(ctx, NARG(T_X), o, NARG(T_OUT), NULL);
    case N_NLL:
        return clxent_nll_loss_nd(ctx, NARG(T_X), NARG(T_Y), &e->w, o,
                                  NARG(T_LOSS), NULL);
    case N_NLLB:
        return clxent_nll_loss_backward_nd(ctx, NARG(T_X), NARG(T_Y), &e->w, o,
                                           NARG(T_GR), NARG(T_GRAD), NULL);
    case N_FWD:
        return clxent_cross_entropy_forward_nd(ctx, NARG(T_X), tgp, &e->w, o,
                                               NARG(T_LOSS), NARG(T_LSEO),
                                               NARG(T_Z), NULL);
    case N_BWD:
        return clxent_cross_entropy_backward_nd(ctx, NARG(T_X), tgp, &e->w, o,
                                                NARG(T_LSEI), NARG(T_GR),
                                                NARG(T_GRAD), NULL);
    case N_FUSED:
        return clxent_cross_entropy_nd(ctx, NARG(T_X), tgp, &e->w, o,
                                       NARG(T_GR), NARG(T_LOSS), NARG(T_LSEO),
                                       NARG(T_Z), NARG(T_GRAD), NULL);
    case N_COPY: return clxent_copy_nd(ctx, NARG(T_X), NARG(T_OUT), NULL);
    default: break;
    }
    return CLXENT_STATUS_INVALID_ARGUMENT;
}

typedef void (*nd_mutator)(nd_env *e, int s);

/* Tensor faults (any slot of the kind). */
static void tf_null(nd_env *e, int s) { nd_slot(e, s); e->null_slot = s; }
static void tf_null_buf(nd_env *e, int s) { nd_slot(e, s)->buffer = NULL; }
static void tf_classes0(nd_env *e, int s) { nd_slot(e, s)->classes = 0; }
static void tf_outer_huge(nd_env *e, int s) {
    nd_slot(e, s)->outer = (size_t)1 << 31;
}
static void tf_rows_ovf(nd_env *e, int s) { /* outer x inner > 2^31 - 1 */
    clxent_tensor *t = nd_slot(e, s);
    t->outer = (size_t)1 << 16;
    t->inner = (size_t)1 << 16;
}
static void tf_rows_wrap(nd_env *e, int s) { /* outer x inner wraps size_t */
    clxent_tensor *t = nd_slot(e, s);
    t->outer = (size_t)1 << 33;
    t->inner = (size_t)1 << 33;
}
static void tf_stride_ovf(nd_env *e, int s) {
    nd_slot(e, s)->outer_stride = SIZE_MAX / 2 + 7;
}
static void tf_span_max(nd_env *e, int s) { /* the highest element at */
    clxent_tensor *t = nd_slot(e, s);      /* SIZE_MAX: span + 1 wraps */
    size_t rest = (t->classes - 1) * t->class_stride +
                  (t->inner - 1) * t->inner_stride;
    t->outer_stride = (SIZE_MAX - rest) / (t->outer - 1); /* outer NO = 2 */
}
static void tf_bytes_ovf(nd_env *e, int s) { /* elements fit, bytes wrap */
    nd_slot(e, s)->inner_stride = SIZE_MAX / 8;
}
static void tf_overrun(nd_env *e, int s) { /* strides past the buffer */
    clxent_tensor *t = nd_slot(e, s);
    if (t->inner > 1) t->inner_stride = 40;
    else t->outer_stride = 40;
}
static void tf_offset_end(nd_env *e, int s) {
    clxent_tensor *t = nd_slot(e, s);
    t->offset = clxent_buffer_size(t->buffer) / clxent_dtype_size(t->dtype);
}
static void tf_offset_ovf(nd_env *e, int s) {
    nd_slot(e, s)->offset = SIZE_MAX - 2;
}
static void tf_tiny(nd_env *e, int s) { nd_slot(e, s)->buffer = e->b[NB_TINY]; }
static void tf_dtype_int(nd_env *e, int s) {
    clxent_tensor *t = nd_slot(e, s);
    t->dtype = s == T_Y ? CLXENT_F32 : CLXENT_I32;
}
static void tf_dtype_wild(nd_env *e, int s) {
    nd_slot(e, s)->dtype = (clxent_dtype)77;
}
static void tf_dtype_f16(nd_env *e, int s) {
    nd_slot(e, s)->dtype = CLXENT_F16;
}
static void tf_rank8(nd_env *e, int s) {
    clxent_tensor *t = nd_slot(e, s);
    t->inner_rank = CLXENT_MAX_INNER_DIMS + 1;
}
static void tf_dims_product(nd_env *e, int s) {
    clxent_tensor *t = nd_slot(e, s);
    t->inner_rank = 2;
    t->inner_dims[0] = 2;
    t->inner_dims[1] = 3; /* 6, not 4 */
}
static void tf_dims_zero(nd_env *e, int s) {
    clxent_tensor *t = nd_slot(e, s);
    t->inner_rank = 1;
    t->inner_dims[0] = 0;
}
static void tf_outer_more(nd_env *e, int s) {
    clxent_tensor *t = nd_slot(e, s);
    t->outer = NO + 1;
    t->outer_stride = 1; /* keeps it inside the buffer */
    t->inner_stride = NO + 1;
    if (t->classes > 1) { t->class_stride = NI * (NO + 1); }
}
static void tf_inner_less(nd_env *e, int s) {
    clxent_tensor *t = nd_slot(e, s);
    t->inner = NI - 1;
}
static void tf_classes_more(nd_env *e, int s) {
    clxent_tensor *t = nd_slot(e, s);
    t->classes += 1;
    t->outer_stride = t->classes * t->inner;
}
/* An output whose elements share addresses. */
static void tf_self_inner0(nd_env *e, int s) {
    if (s == T_LOSS || s == T_Z) nd_per_row(e);
    nd_slot(e, s)->inner_stride = 0;
}
static void tf_self_outer0(nd_env *e, int s) {
    if (s == T_LOSS || s == T_Z) nd_per_row(e);
    nd_slot(e, s)->outer_stride = 0;
}
static void tf_self_interleave(nd_env *e, int s) { /* c + i: 3 x 4 collide */
    clxent_tensor *t = nd_slot(e, s);
    t->class_stride = 1;
    t->inner_stride = 1;
    t->outer_stride = NC + NI;
}

/* Options. */
static void of_size0(nd_env *e, int s) { (void)s; e->opt.size = 0; }
static void of_size_small(nd_env *e, int s) {
    (void)s;
    e->opt.size = sizeof(size_t) + 4;
}
static void of_cap_nan(nd_env *e, int s) { (void)s; e->opt.softcap = NAN; }
static void of_cap_inf(nd_env *e, int s) { (void)s; e->opt.softcap = INFINITY; }
static void of_cap_neg(nd_env *e, int s) { (void)s; e->opt.softcap = -1.0f; }
static void of_scale0(nd_env *e, int s) { (void)s; e->opt.logit_scale = 0.0f; }
static void of_scale_neg(nd_env *e, int s) { (void)s; e->opt.logit_scale = -2.0f; }
static void of_scale_nan(nd_env *e, int s) { (void)s; e->opt.logit_scale = NAN; }
static void of_scale_inf(nd_env *e, int s) { (void)s; e->opt.logit_scale = INFINITY; }
static void of_nll_cap(nd_env *e, int s) { (void)s; e->opt.softcap = 5.0f; }
static void of_nll_scale(nd_env *e, int s) { (void)s; e->opt.logit_scale = 2.0f; }
static void of_smooth(nd_env *e, int s) { (void)s; e->opt.loss.label_smoothing = 2.0f; }
static void of_reduction(nd_env *e, int s) {
    (void)s;
    e->opt.loss.reduction = (clxent_reduction)5;
}

/* Shapes of the losses against the reduction. */
static void lf_none_scalar(nd_env *e, int s) { /* none, loss 1 x 1 */
    (void)s;
    e->opt.loss.reduction = CLXENT_REDUCTION_NONE;
    e->t[T_Z] = nd_rows(e->b[NB_Z], CLXENT_F32);
}
static void lf_mean_rows(nd_env *e, int s) { /* mean, loss per row */
    (void)s;
    e->t[T_LOSS] = nd_rows(e->b[NB_LOSS], CLXENT_F32);
}
static void lf_z_rows(nd_env *e, int s) { /* mean, z-loss part per row */
    (void)s;
    e->t[T_Z] = nd_rows(e->b[NB_Z], CLXENT_F32);
}

/* Targets. */
static void gf_null(nd_env *e, int s) { (void)s; e->null_slot = T_TG; }
static void gf_neither(nd_env *e, int s) { (void)s; e->null_slot = T_Y + 100; }
static void gf_both(nd_env *e, int s) {
    (void)s;
    e->t[T_P] = nd_full(e->b[NB_P]);
    e->null_slot = T_P + 100;
}
static void gf_probs_ignore(nd_env *e, int s) {
    (void)s;
    e->t[T_P] = nd_full(e->b[NB_P]);
    e->opt.loss.ignore_index = 1;
}
static void gf_probs_dtype(nd_env *e, int s) {
    (void)s;
    e->t[T_P] = nd_full(e->b[NB_P]);
    e->t[T_P].dtype = CLXENT_BF16;
}
static void gf_grad_rows_mean(nd_env *e, int s) {
    (void)s;
    nd_per_row(e);
    e->opt.loss.reduction = CLXENT_REDUCTION_MEAN;
    e->t[T_LOSS] = nd_scalar(e->b[NB_LOSS]);
    e->t[T_Z] = nd_scalar(e->b[NB_Z]);
}
static void gf_grad_dtype(nd_env *e, int s) {
    (void)s;
    e->t[T_GRAD].dtype = CLXENT_BF16;
}

/* Outputs in other arguments' bytes. */
static void af_lse_in_loss(nd_env *e, int s) {
    (void)s;
    e->t[T_LSEO].buffer = e->b[NB_LOSS];
}
static void af_z_in_loss(nd_env *e, int s) {
    (void)s;
    e->t[T_Z].buffer = e->b[NB_LOSS];
}
static void af_grad_in_x(nd_env *e, int s) { /* strided into x's bytes */
    (void)s;
    e->t[T_GRAD].buffer = e->b[NB_X];
    e->t[T_GRAD].offset = 1;
}
static void af_grad_is_x(nd_env *e, int s) { /* the logits, no in_place */
    (void)s;
    e->t[T_GRAD] = e->t[T_X];
}
static void af_out_in_x(nd_env *e, int s) {
    (void)s;
    e->t[T_OUT].buffer = e->b[NB_X];
    e->t[T_OUT].offset = 3;
}
static void af_vout_is_vin(nd_env *e, int s) {
    (void)s;
    e->t[T_VOUT] = e->t[T_VIN];
}

#define ANY (-1) /* a fault for every slot in its `slots` */

typedef struct nd_fault {
    const char *what;
    int slot;        /* ANY: each slot in `slots` the op has */
    unsigned slots;  /* for ANY */
    nd_mutator mutate;
    clxent_status expect;
    const char *word; /* NULL: the slot's name */
    unsigned ops;     /* TB(nd_op) it applies to; 0: any with the slot */
} nd_fault;

#define ALL_T (T_FULL | T_ROWS)
#define NOT_X (ALL_T & ~TB(T_X))
#define NLL_OPS (TB(N_NLL) | TB(N_NLLB))
#define GRAD_OPS (TB(N_NLLB) | TB(N_BWD) | TB(N_FUSED))
#define ROWS_OUT (TB(T_LSEO) | TB(T_VOUT) | TB(T_LOSS) | TB(T_Z))

static const nd_fault ND_FAULTS[] = {
    {"NULL descriptor", ANY, (ALL_T & ~(TB(T_P) | TB(T_Y) | TB(T_GR) | TB(T_LSEO) | TB(T_Z))) , tf_null, CLXENT_STATUS_NULL_POINTER, NULL, 0},
    {"NULL buffer", ANY, TB(T_X) | TB(T_OUT) | TB(T_GRAD) | TB(T_VIN) | TB(T_VOUT) | TB(T_LSEI) | TB(T_LOSS), tf_null_buf, CLXENT_STATUS_NULL_POINTER, NULL, 0},
    {"classes 0", ANY, ALL_T, tf_classes0, CLXENT_STATUS_INVALID_SHAPE, NULL, 0},
    {"outer 2^31", ANY, ALL_T, tf_outer_huge, CLXENT_STATUS_INVALID_SHAPE, NULL, 0},
    {"outer x inner 2^32", ANY, ALL_T, tf_rows_ovf, CLXENT_STATUS_INVALID_SHAPE, NULL, 0},
    {"outer x inner wraps size_t", ANY, ALL_T, tf_rows_wrap, CLXENT_STATUS_INVALID_SHAPE, NULL, 0},
    {"outer stride overflows", ANY, ALL_T & ~(TB(T_LOSS) | TB(T_Z)), tf_stride_ovf, CLXENT_STATUS_SIZE_OVERFLOW, NULL, 0},
    {"highest element at SIZE_MAX", ANY, ALL_T & ~(TB(T_LOSS) | TB(T_Z)), tf_span_max, CLXENT_STATUS_SIZE_OVERFLOW, NULL, 0},
    {"inner stride x bytes overflows", ANY, ALL_T & ~(TB(T_LOSS) | TB(T_Z)), tf_bytes_ovf, CLXENT_STATUS_SIZE_OVERFLOW, NULL, 0},
    {"strides overrun the buffer", ANY, ALL_T & ~(TB(T_LOSS) | TB(T_Z)), tf_overrun, CLXENT_STATUS_BUFFER_TOO_SMALL, NULL, 0},
    {"offset at the end", ANY, ALL_T, tf_offset_end, CLXENT_STATUS_BUFFER_TOO_SMALL, NULL, 0},
    {"offset SIZE_MAX-2", ANY, ALL_T, tf_offset_ovf, CLXENT_STATUS_SIZE_OVERFLOW, NULL, 0},
    {"buffer too small", ANY, ALL_T, tf_tiny, CLXENT_STATUS_BUFFER_TOO_SMALL, NULL, 0},
    {"integer/float dtype swapped", ANY, ALL_T, tf_dtype_int, CLXENT_STATUS_INVALID_DTYPE, NULL, 0},
    {"unknown dtype 77", ANY, ALL_T, tf_dtype_wild, CLXENT_STATUS_INVALID_DTYPE, NULL, 0},
    {"f16 where f32 or an index is needed", ANY, T_ROWS, tf_dtype_f16, CLXENT_STATUS_INVALID_DTYPE, NULL, 0},
    {"inner_rank 8", ANY, ALL_T, tf_rank8, CLXENT_STATUS_INVALID_SHAPE, "inner_rank", 0},
    {"inner_dims 2 x 3 for inner 4", ANY, ALL_T & ~(TB(T_LOSS) | TB(T_Z)), tf_dims_product, CLXENT_STATUS_INVALID_SHAPE, "inner_dims", 0},
    {"inner_dims 0 for inner 4", ANY, ALL_T & ~(TB(T_LOSS) | TB(T_Z)), tf_dims_zero, CLXENT_STATUS_INVALID_SHAPE, "inner_dims", 0},
    {"one outer more than x", ANY, NOT_X & ~(TB(T_LOSS) | TB(T_Z)), tf_outer_more, CLXENT_STATUS_INVALID_SHAPE, NULL, 0},
    {"one inner less than x", ANY, NOT_X & ~(TB(T_LOSS) | TB(T_Z)), tf_inner_less, CLXENT_STATUS_INVALID_SHAPE, NULL, 0},
    {"one class more than x", ANY, NOT_X, tf_classes_more, CLXENT_STATUS_INVALID_SHAPE, NULL, 0},
    {"output with inner stride 0", ANY, TB(T_OUT) | TB(T_GRAD) | ROWS_OUT, tf_self_inner0, CLXENT_STATUS_INVALID_SHAPE, "overlap", 0},
    {"output with outer stride 0", ANY, TB(T_OUT) | TB(T_GRAD) | ROWS_OUT, tf_self_outer0, CLXENT_STATUS_INVALID_SHAPE, "overlap", 0},
    {"output with classes and positions interleaved", ANY, TB(T_OUT) | TB(T_GRAD), tf_self_interleave, CLXENT_STATUS_INVALID_SHAPE, "overlap", 0},
    /* options */
    {"options->size 0", T_OPT, 0, of_size0, CLXENT_STATUS_INVALID_ARGUMENT, "size", 0},
    {"options->size too small for loss", T_OPT, 0, of_size_small, CLXENT_STATUS_INVALID_ARGUMENT, "size", 0},
    {"softcap NaN", T_OPT, 0, of_cap_nan, CLXENT_STATUS_INVALID_ARGUMENT, "softcap", 0},
    {"softcap inf", T_OPT, 0, of_cap_inf, CLXENT_STATUS_INVALID_ARGUMENT, "softcap", 0},
    {"softcap -1", T_OPT, 0, of_cap_neg, CLXENT_STATUS_INVALID_ARGUMENT, "softcap", 0},
    {"logit_scale 0", T_OPT, 0, of_scale0, CLXENT_STATUS_INVALID_ARGUMENT, "logit_scale", 0},
    {"logit_scale -2", T_OPT, 0, of_scale_neg, CLXENT_STATUS_INVALID_ARGUMENT, "logit_scale", 0},
    {"logit_scale NaN", T_OPT, 0, of_scale_nan, CLXENT_STATUS_INVALID_ARGUMENT, "logit_scale", 0},
    {"logit_scale inf", T_OPT, 0, of_scale_inf, CLXENT_STATUS_INVALID_ARGUMENT, "logit_scale", 0},
    {"softcap on NLL", T_OPT, 0, of_nll_cap, CLXENT_STATUS_INVALID_ARGUMENT, "softcap", NLL_OPS},
    {"logit_scale on NLL", T_OPT, 0, of_nll_scale, CLXENT_STATUS_INVALID_ARGUMENT, "logit_scale", NLL_OPS},
    {"label_smoothing 2", T_OPT, 0, of_smooth, CLXENT_STATUS_INVALID_ARGUMENT, "label_smoothing", 0},
    {"reduction 5", T_OPT, 0, of_reduction, CLXENT_STATUS_INVALID_ARGUMENT, "reduction", 0},
    /* losses against the reduction */
    {"reduction none, loss 1 x 1", T_LOSS, 0, lf_none_scalar, CLXENT_STATUS_INVALID_SHAPE, "loss", 0},
    {"reduction mean, loss per row", T_LOSS, 0, lf_mean_rows, CLXENT_STATUS_INVALID_SHAPE, "loss", 0},
    {"reduction mean, z_loss_out per row", T_Z, 0, lf_z_rows, CLXENT_STATUS_INVALID_SHAPE, "z_loss_out", 0},
    /* targets */
    {"targets NULL", T_TG, 0, gf_null, CLXENT_STATUS_NULL_POINTER, "targets", 0},
    {"neither indices nor probs", T_TG, 0, gf_neither, CLXENT_STATUS_INVALID_ARGUMENT, "targets", 0},
    {"indices and probs", T_TG, 0, gf_both, CLXENT_STATUS_INVALID_ARGUMENT, "targets", 0},
    {"ignore_index 1 with probs", T_TG, 0, gf_probs_ignore, CLXENT_STATUS_INVALID_ARGUMENT, "ignore_index", 0},
    {"probs bf16 with f32 logits", T_TG, 0, gf_probs_dtype, CLXENT_STATUS_INVALID_DTYPE, "targets.probs", 0},
    {"grad_rows with reduction mean", T_GR, 0, gf_grad_rows_mean, CLXENT_STATUS_INVALID_ARGUMENT, "grad_rows", 0},
    {"grad bf16 with f32 logits", T_GRAD, 0, gf_grad_dtype, CLXENT_STATUS_INVALID_DTYPE, "grad", 0},
    /* aliasing */
    {"lse in the loss's bytes", T_LSEO, 0, af_lse_in_loss, CLXENT_STATUS_INVALID_ARGUMENT, "overlaps", 0},
    {"z_loss_out in the loss's bytes", T_Z, 0, af_z_in_loss, CLXENT_STATUS_INVALID_ARGUMENT, "overlaps", 0},
    {"grad inside the logits' bytes", T_GRAD, 0, af_grad_in_x, CLXENT_STATUS_INVALID_ARGUMENT, "overlaps", TB(N_BWD) | TB(N_FUSED)},
    {"grad is the logits without in_place", T_GRAD, 0, af_grad_is_x, CLXENT_STATUS_INVALID_ARGUMENT, "in_place", TB(N_BWD) | TB(N_FUSED)},
    {"out inside x's bytes", T_OUT, 0, af_out_in_x, CLXENT_STATUS_INVALID_ARGUMENT, "overlaps", 0},
    {"out is row_max", T_VOUT, 0, af_vout_is_vin, CLXENT_STATUS_INVALID_ARGUMENT, "overlaps", TB(N_EXPSUM)},
};

static void nd_make_env(nd_env *e, clxent_context *ctx) {
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    e->device = info.backend == CLXENT_BACKEND_OPENCL;
    fx_rng rng = fx_rng_seed(17);
    float x[NCAP], p[NCAP], w[NC], v[NRCAP];
    int32_t y[NRCAP];
    fx_fill_uniform(&rng, x, NCAP, -3.0f, 3.0f);
    fx_fill_uniform(&rng, p, NCAP, 0.0f, 0.4f);
    fx_fill_uniform(&rng, w, NC, 0.5f, 2.0f);
    fx_fill_uniform(&rng, v, NRCAP, 1.0f, 3.0f);
    for (int i = 0; i < NRCAP; ++i) y[i] = i % NC;
    e->b[NB_X] = fx_upload(ctx, x, sizeof x);
    e->b[NB_P] = fx_upload(ctx, p, sizeof p);
    e->b[NB_Y] = fx_upload(ctx, y, sizeof y);
    e->b[NB_W] = fx_upload(ctx, w, sizeof w);
    e->b[NB_VIN] = fx_upload(ctx, v, sizeof v);
    e->b[NB_GR] = fx_upload(ctx, v, sizeof v);
    e->b[NB_LOSS] = fx_upload(ctx, NULL, NRCAP * 4);
    e->b[NB_LSE] = fx_upload(ctx, NULL, NRCAP * 4);
    e->b[NB_VOUT] = fx_upload(ctx, NULL, NRCAP * 4);
    e->b[NB_Z] = fx_upload(ctx, NULL, NRCAP * 4);
    e->b[NB_GRAD] = fx_upload(ctx, NULL, NCAP * 4);
    e->b[NB_OUT] = fx_upload(ctx, NULL, NCAP * 4);
    e->b[NB_TINY] = fx_upload(ctx, NULL, 3);
    for (int i = 0; i < NB_COUNT; ++i)
        e->snapshot[i] = fx_download(ctx, e->b[i]);
}

static void nd_free_env(nd_env *e) {
    for (int i = 0; i < NB_COUNT; ++i) {
        clxent_buffer_release(e->b[i]);
        free(e->snapshot[i]);
    }
}

static void nd_check_buffers(nd_env *e, const char *label, int restore) {
    fx_compare_snapshots(e->ctx, e->b, e->snapshot, NB_COUNT, label,
                         restore);
}

static void nd_run_table(nd_env *e) {
    size_t cases = 0;
    for (int op = 0; op < N_COUNT; ++op) {
        nd_reset(e);
        clxent_status st = nd_call(e, (nd_op)op);
        if (st == CLXENT_STATUS_OK) st = clxent_finish(e->ctx);
        if (st != CLXENT_STATUS_OK)
            fail_msg("%s: the valid call failed: %s: %s", nd_fn[op],
                     clxent_status_name(st), clxent_context_message(e->ctx));
        nd_check_buffers(e, nd_fn[op], 1);
        for (size_t fi = 0; fi < sizeof ND_FAULTS / sizeof *ND_FAULTS; ++fi) {
            const nd_fault *f = &ND_FAULTS[fi];
            if (f->ops && !(f->ops & TB(op))) continue;
            int slots[T_COUNT], n = 0;
            if (f->slot == ANY) {
                for (int s = 0; s < T_COUNT; ++s)
                    if ((f->slots & TB(s)) && (nd_slots[op] & TB(s)))
                        slots[n++] = s;
            } else if (nd_slots[op] & TB(f->slot)) {
                slots[n++] = f->slot;
            }
            for (int k = 0; k < n; ++k) {
                int s = slots[k];
                /* probs only where cross-entropy takes them */
                if (s == T_P && !(nd_slots[op] & TB(T_TG))) continue;
                char label[256];
                snprintf(label, sizeof label, "%s, %s: %s (%s backend)",
                         nd_fn[op], t_slot_name[s], f->what,
                         e->device ? "OpenCL" : "host");
                nd_reset(e);
                f->mutate(e, s);
                clxent_status got = nd_call(e, (nd_op)op);
                const char *msg = clxent_context_message(e->ctx);
                if (got != f->expect)
                    fail_msg("%s: status %s, expected %s; message: %s", label,
                             clxent_status_name(got),
                             clxent_status_name(f->expect), msg);
                const char *word = f->word ? f->word : t_slot_name[s];
                if (!strstr(msg, word))
                    fail_msg("%s: message lacks \"%s\": %s", label, word, msg);
                if (!strstr(msg, nd_fn[op]))
                    fail_msg("%s: message lacks the function name: %s", label,
                             msg);
                fx_assert_status(e->ctx, clxent_finish(e->ctx),
                                 CLXENT_STATUS_OK);
                nd_check_buffers(e, label, 0);
                nd_reset(e);
                st = nd_call(e, (nd_op)op);
                if (st == CLXENT_STATUS_OK) st = clxent_finish(e->ctx);
                if (st != CLXENT_STATUS_OK)
                    fail_msg("%s: the valid call after it failed: %s: %s",
                             label, clxent_status_name(st),
                             clxent_context_message(e->ctx));
                nd_check_buffers(e, label, 1);
                ++cases;
            }
        }
    }
    print_message("%zu tensor bad-input cases on the %s backend\n", cases,
                  e->device ? "OpenCL" : "host");
    assert_true(cases > 300);
}

static void nd_operations(clxent_context *ctx, clxent_context *other) {
    (void)other;
    nd_make_env(&NE, ctx);
    nd_run_table(&NE);
    nd_free_env(&NE);
}

static void test_nd_operations_host(void **state) {
    (void)state;
    fx_on_pair(0, nd_operations);
}

static void test_nd_operations_device(void **state) {
    (void)state;
    fx_on_pair(1, nd_operations);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nd_operations_host),
        cmocka_unit_test(test_nd_operations_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
