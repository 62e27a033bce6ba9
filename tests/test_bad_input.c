/* Bad input, exhaustively: every public operation is called with each bad
 * argument that applies to it (a table of faults x the operation table
 * of ops.h), on the host backend and on the OpenCL device. Each call must
 * return its specific status with a message naming the argument, write
 * nothing (every buffer is compared with a snapshot), and leave the
 * context usable (the same call with valid arguments succeeds right
 * after). The non-operation functions follow in a second, smaller list;
 * test_bad_input_nd.c holds the tensor calls to the same contract. */
#include "fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define R 4 /* rows */
#define C 6 /* classes */
#define CAP (2 * R * C) /* elements in each matrix buffer (room to grow) */

/* Argument slots of the operations. */
enum {
    S_CTX, S_X, S_MOUT, S_VIN, S_VOUT, S_T, S_Y, S_P, S_W, S_OPT, S_LOSS,
    S_LSEO, S_LSEI, S_GR, S_GRAD, S_EV, S_COUNT
};
#define BIT(s) (1u << (s))

enum { B_X, B_P, B_Y, B_W, B_LOSS, B_LSE, B_GRAD, B_MOUT, B_VIN, B_VOUT,
       B_GR, B_TINY, B_YBAD_HI, B_YBAD_NEG, B_YBAD_I64, B_YBAD_IGN,
       B_COUNT };

typedef struct env {
    clxent_context *ctx;    /* the context under test */
    clxent_context *failed; /* a context whose creation failed */
    clxent_buffer *b[B_COUNT];
    clxent_buffer *foreign; /* from another context */
    cl_event foreign_event; /* from another cl_context (device only) */
    cl_event null_event;
    unsigned char *snapshot[B_COUNT];
    int device;
    /* the arguments of the call, reset before each case */
    clxent_matrix x, mout, grad;
    clxent_targets t;
    clxent_vector w, loss, lse_out, lse_in, gr, vin, vout;
    clxent_loss_options opt;
    clxent_events ev;
    int null_slot;       /* this slot's pointer is passed as NULL */
    int use_failed;      /* pass the failed context */
} env;

static env E;

/* ---- entry points: the operation table (ops.h) ---- */

#define ARG(slot, field) (e->null_slot == (slot) ? NULL : &e->field)
#define CTX (e->null_slot == S_CTX ? NULL : e->use_failed ? e->failed : e->ctx)

/* Calls op with the env's arguments, the NULL slot passed as NULL. */
static clxent_status call(env *e, const ops_desc *op) {
    ops_args a = {
        ARG(S_X, x),
        ARG(S_T, t),
        ARG(S_Y, t.indices),
        ARG(S_W, w),
        ARG(S_OPT, opt),
        ARG(S_GR, gr),
        op->io & OPS_LSE_IN ? ARG(S_LSEI, lse_in) : ARG(S_VIN, vin),
        ARG(S_LOSS, loss),
        op->io & OPS_LSE_OUT ? ARG(S_LSEO, lse_out) : ARG(S_VOUT, vout),
        op->io & OPS_GRAD ? ARG(S_GRAD, grad) : ARG(S_MOUT, mout),
        ARG(S_EV, ev),
    };
    return op->enqueue(CTX, &a);
}

/* The argument slots of op. */
static unsigned slots_of(const ops_desc *op) {
    static const struct { unsigned io, slots; } map[] = {
        {OPS_TARGETS, BIT(S_T) | BIT(S_Y) | BIT(S_P)},
        {OPS_INDICES, BIT(S_Y)},
        {OPS_WEIGHTS, BIT(S_W)},
        {OPS_OPTIONS, BIT(S_OPT)},
        {OPS_GRAD_ROWS, BIT(S_GR)},
        {OPS_LOSS, BIT(S_LOSS)},
        {OPS_VEC_IN, BIT(S_VIN)},
        {OPS_LSE_IN, BIT(S_LSEI)},
        {OPS_VEC_OUT, BIT(S_VOUT)},
        {OPS_LSE_OUT, BIT(S_LSEO)},
        {OPS_MAT_OUT, BIT(S_MOUT)},
        {OPS_GRAD, BIT(S_GRAD)},
    };
    unsigned slots = BIT(S_CTX) | BIT(S_X) | BIT(S_EV);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; ++i)
        if (op->io & map[i].io) slots |= map[i].slots;
    return slots;
}

#define NLL_APIS (BIT(OPS_NLL) | BIT(OPS_NLL_BACKWARD))
#define CE_APIS (BIT(OPS_CE_FORWARD) | BIT(OPS_CE_BACKWARD) | BIT(OPS_CE_FUSED))
#define LOSS_APIS (NLL_APIS | CE_APIS)

static const char *slot_name(const ops_desc *op, int slot) {
    switch (slot) {
    case S_CTX: return "ctx";
    case S_X: return op->x_arg;
    case S_MOUT: return "out";
    case S_VIN: return "row_max";
    case S_VOUT: return op->vec_out_arg;
    case S_T: case S_Y: return "targets";
    case S_P: return "targets.probs";
    case S_W: return "weights";
    case S_OPT: return "options";
    case S_LOSS: return "loss";
    case S_LSEO: case S_LSEI: return "lse";
    case S_GR: return "grad_rows";
    case S_GRAD: return "grad";
    case S_EV: return "wait_list";
    }
    return "?";
}

/* ---- the valid call, and the slot accessors the faults use ---- */

static void reset(env *e) {
    e->null_slot = -1;
    e->use_failed = 0;
    e->x = (clxent_matrix){e->b[B_X], 0, R, C, C, CLXENT_F32};
    e->mout = (clxent_matrix){e->b[B_MOUT], 0, R, C, C, CLXENT_F32};
    e->grad = (clxent_matrix){e->b[B_GRAD], 0, R, C, C, CLXENT_F32};
    memset(&e->t, 0, sizeof e->t);
    e->t.indices = clxent_vector_of(e->b[B_Y], R, CLXENT_I32);
    e->w = clxent_vector_of(e->b[B_W], C, CLXENT_F32);
    e->loss = clxent_vector_of(e->b[B_LOSS], 1, CLXENT_F32);
    e->lse_out = clxent_vector_of(e->b[B_LSE], R, CLXENT_F32);
    e->lse_in = clxent_vector_of(e->b[B_VIN], R, CLXENT_F32);
    memset(&e->gr, 0, sizeof e->gr); /* absent unless a fault needs it */
    e->vin = clxent_vector_of(e->b[B_VIN], R, CLXENT_F32);
    e->vout = clxent_vector_of(e->b[B_VOUT], R, CLXENT_F32);
    clxent_loss_options_init(&e->opt);
    memset(&e->ev, 0, sizeof e->ev);
}

static clxent_matrix *slot_matrix(env *e, int slot) {
    switch (slot) {
    case S_X: return &e->x;
    case S_MOUT: return &e->mout;
    case S_GRAD: return &e->grad;
    case S_P:
        e->t.indices.buffer = NULL;
        e->t.probs = (clxent_matrix){e->b[B_P], 0, R, C, C, CLXENT_F32};
        return &e->t.probs;
    }
    fail_msg("slot %d is not a matrix", slot);
    return NULL;
}

static void per_row_upstream(env *e) {
    e->opt.reduction = CLXENT_REDUCTION_NONE;
    e->loss.length = R;
    e->gr = clxent_vector_of(e->b[B_GR], R, CLXENT_F32);
}

static clxent_vector *slot_vector(env *e, int slot) {
    switch (slot) {
    case S_VIN: return &e->vin;
    case S_VOUT: return &e->vout;
    case S_Y: return &e->t.indices;
    case S_W: return &e->w;
    case S_LOSS: return &e->loss;
    case S_LSEO: return &e->lse_out;
    case S_LSEI: return &e->lse_in;
    case S_GR: per_row_upstream(e); return &e->gr;
    }
    fail_msg("slot %d is not a vector", slot);
    return NULL;
}

static int is_matrix_slot(int s) {
    return s == S_X || s == S_MOUT || s == S_GRAD || s == S_P;
}
static int is_vector_slot(int s) {
    return s == S_VIN || s == S_VOUT || s == S_Y || s == S_W || s == S_LOSS ||
           s == S_LSEO || s == S_LSEI || s == S_GR;
}

/* ---- faults ---- */

typedef void (*mutator)(env *e, int slot);

/* Matrix faults. */
static void m_null_desc(env *e, int s) { slot_matrix(e, s); e->null_slot = s; }
static void m_null_buf(env *e, int s) { slot_matrix(e, s)->buffer = NULL; }
static void m_foreign(env *e, int s) { slot_matrix(e, s)->buffer = e->foreign; }
static void m_dtype_int(env *e, int s) { slot_matrix(e, s)->dtype = CLXENT_I32; }
static void m_dtype_wild(env *e, int s) {
    slot_matrix(e, s)->dtype = (clxent_dtype)77;
}
static void m_dtype_f16(env *e, int s) { slot_matrix(e, s)->dtype = CLXENT_F16; }
static void m_cols0(env *e, int s) { slot_matrix(e, s)->cols = 0; }
static void m_rows_neg(env *e, int s) { slot_matrix(e, s)->rows = SIZE_MAX - 1; }
static void m_cols_neg(env *e, int s) {
    clxent_matrix *m = slot_matrix(e, s);
    m->cols = m->stride = SIZE_MAX - 3;
}
static void m_stride_lt(env *e, int s) {
    slot_matrix(e, s)->stride = C - 1;
}
static void m_rows_stride_ovf(env *e, int s) { /* (rows-1)*stride wraps */
    clxent_matrix *m = slot_matrix(e, s);
    m->rows = 1u << 20;
    m->stride = (size_t)1 << 45;
}
static void m_bytes_ovf(env *e, int s) { /* elements fit, bytes wrap */
    clxent_matrix *m = slot_matrix(e, s);
    m->rows = 2;
    m->stride = SIZE_MAX / 2;
}
static void m_offset_ovf(env *e, int s) { slot_matrix(e, s)->offset = SIZE_MAX - 2; }
static void m_offset_bytes_ovf(env *e, int s) {
    slot_matrix(e, s)->offset = SIZE_MAX / 4 + 1;
}
static void m_offset_end(env *e, int s) { slot_matrix(e, s)->offset = CAP; }
static void m_offset_tail(env *e, int s) { /* starts inside, ends past */
    slot_matrix(e, s)->offset = CAP - R * C + 1;
}
static void m_tiny(env *e, int s) { slot_matrix(e, s)->buffer = e->b[B_TINY]; }
static void m_rows_more(env *e, int s) { slot_matrix(e, s)->rows = R + 1; }
static void m_cols_more(env *e, int s) {
    clxent_matrix *m = slot_matrix(e, s);
    m->cols = m->stride = C + 1;
}

/* Vector faults. */
static void v_null_desc(env *e, int s) { slot_vector(e, s); e->null_slot = s; }
static void v_null_buf(env *e, int s) { slot_vector(e, s)->buffer = NULL; }
static void v_foreign(env *e, int s) { slot_vector(e, s)->buffer = e->foreign; }
static void v_dtype(env *e, int s) { /* an index where floats go and back */
    clxent_vector *v = slot_vector(e, s);
    v->dtype = s == S_Y ? CLXENT_F32 : CLXENT_I32;
}
static void v_dtype_f16(env *e, int s) { slot_vector(e, s)->dtype = CLXENT_F16; }
static void v_dtype_wild(env *e, int s) {
    slot_vector(e, s)->dtype = (clxent_dtype)-3;
}
static void v_len_more(env *e, int s) { slot_vector(e, s)->length += 1; }
static void v_len_zero(env *e, int s) { slot_vector(e, s)->length = 0; }
static void v_len_neg(env *e, int s) { slot_vector(e, s)->length = SIZE_MAX; }
static void v_offset_ovf(env *e, int s) { slot_vector(e, s)->offset = SIZE_MAX - 1; }
static void v_offset_end(env *e, int s) { slot_vector(e, s)->offset = CAP; }
static void v_tiny(env *e, int s) { slot_vector(e, s)->buffer = e->b[B_TINY]; }

/* Options. */
static void o_reduction(env *e, int s) { (void)s; e->opt.reduction = (clxent_reduction)3; }
static void o_reduction_neg(env *e, int s) { (void)s; e->opt.reduction = (clxent_reduction)-1; }
static void o_smooth_neg(env *e, int s) { (void)s; e->opt.label_smoothing = -0.1f; }
static void o_smooth_big(env *e, int s) { (void)s; e->opt.label_smoothing = 1.5f; }
static void o_smooth_nan(env *e, int s) { (void)s; e->opt.label_smoothing = NAN; }
static void o_smooth_inf(env *e, int s) { (void)s; e->opt.label_smoothing = INFINITY; }
static void o_zloss_neg(env *e, int s) { (void)s; e->opt.z_loss = -1e-3f; }
static void o_zloss_nan(env *e, int s) { (void)s; e->opt.z_loss = NAN; }
static void o_zloss_inf(env *e, int s) { (void)s; e->opt.z_loss = INFINITY; }
static void o_gscale_nan(env *e, int s) { (void)s; e->opt.grad_scale = NAN; }
static void o_gscale_inf(env *e, int s) { (void)s; e->opt.grad_scale = -INFINITY; }
static void o_norm_neg(env *e, int s) { (void)s; e->opt.normalizer = -1.0f; }
static void o_norm_nan(env *e, int s) { (void)s; e->opt.normalizer = NAN; }
static void o_norm_inf(env *e, int s) { (void)s; e->opt.normalizer = INFINITY; }
static void o_all_ignored(env *e, int s) { (void)s; e->opt.all_ignored_zero = 2; }
static void o_in_place(env *e, int s) { (void)s; e->opt.in_place = -1; }
static void o_check(env *e, int s) { (void)s; e->opt.target_check = (clxent_target_check)9; }
static void o_nll_smooth(env *e, int s) { (void)s; e->opt.label_smoothing = 0.1f; }
static void o_nll_zloss(env *e, int s) { (void)s; e->opt.z_loss = 0.5f; }

/* Targets. */
static void t_null(env *e, int s) { (void)s; e->null_slot = S_T; }
static void t_both(env *e, int s) {
    (void)s;
    e->t.probs = (clxent_matrix){e->b[B_P], 0, R, C, C, CLXENT_F32};
}
static void t_neither(env *e, int s) { (void)s; e->t.indices.buffer = NULL; }
static void t_probs_ignore(env *e, int s) {
    slot_matrix(e, S_P);
    (void)s;
    e->opt.ignore_index = 0;
}
static void t_probs_ignore_neg(env *e, int s) {
    slot_matrix(e, S_P);
    (void)s;
    e->opt.ignore_index = -1;
}

/* Upstream gradient per row with a reducing reduction. */
static void g_rows_sum(env *e, int s) {
    (void)s;
    per_row_upstream(e);
    e->opt.reduction = CLXENT_REDUCTION_SUM;
    e->loss.length = 1;
}
static void g_rows_mean(env *e, int s) {
    g_rows_sum(e, s);
    e->opt.reduction = CLXENT_REDUCTION_MEAN;
}

/* Aliasing. */
static void al_grad_is_x(env *e, int s) { (void)s; e->grad = e->x; }
static void al_grad_overlaps_x(env *e, int s) {
    (void)s;
    e->grad = e->x;
    e->grad.offset = 1;
    e->opt.in_place = 1;
}
static void al_lse_in_loss(env *e, int s) {
    (void)s;
    e->lse_out.buffer = e->loss.buffer;
}
static void al_out_is_x(env *e, int s) { (void)s; e->mout = e->x; }
static void al_vout_in_x(env *e, int s) { (void)s; e->vout.buffer = e->x.buffer; }
static void al_vout_is_vin(env *e, int s) { (void)s; e->vout = e->vin; }
static void al_loss_in_x(env *e, int s) { (void)s; e->loss.buffer = e->x.buffer; }

/* Events. */
static void ev_null_list(env *e, int s) { (void)s; e->ev.num_wait = 1; }
static void ev_list_no_count(env *e, int s) {
    (void)s;
    e->ev.wait_list = &e->foreign_event;
}
static void ev_null_entry(env *e, int s) {
    (void)s;
    e->ev.num_wait = 1;
    e->ev.wait_list = &e->null_event;
}
static void ev_foreign(env *e, int s) {
    (void)s;
    e->ev.num_wait = 1;
    e->ev.wait_list = &e->foreign_event;
}

/* Context. */
static void c_null(env *e, int s) { (void)s; e->null_slot = S_CTX; }
static void c_failed(env *e, int s) { (void)s; e->use_failed = 1; }

/* Targets out of range, found when the operation runs. */
static void y_hi(env *e, int s) { (void)s; e->t.indices.buffer = e->b[B_YBAD_HI]; }
static void y_neg(env *e, int s) { (void)s; e->t.indices.buffer = e->b[B_YBAD_NEG]; }
static void y_i64(env *e, int s) {
    (void)s;
    e->t.indices = clxent_vector_of(e->b[B_YBAD_I64], R, CLXENT_I64);
}
static void y_ignore_moved(env *e, int s) { /* -100 is no longer ignored */
    (void)s;
    e->t.indices.buffer = e->b[B_YBAD_IGN];
    e->opt.ignore_index = 2;
}
static void y_hi_deferred(env *e, int s) {
    y_hi(e, s);
    e->opt.target_check = CLXENT_CHECK_DEFERRED;
}

#define ANY (-1) /* a generic matrix or vector fault: applies to every slot */
#define SAME ((clxent_status)-1)

typedef struct fault {
    const char *what;
    int slot;   /* ANY: every matrix (or vector) slot, per `kind` */
    char kind;  /* 'm' matrix, 'v' vector, 0 the slot itself */
    mutator mutate;
    clxent_status expect;
    clxent_status expect_host; /* SAME: as expect */
    const char *word;          /* NULL: the slot's argument name */
    unsigned only;             /* BIT(ops_id) it applies to; 0: all with
                                  the slot */
    unsigned except_slots;     /* generic faults: slots it skips */
    int deferred;              /* outputs may be written; finish reports */
} fault;

#define NOX BIT(S_X) /* a fault that would be legal (or different) on x */

static const fault FAULTS[] = {
    /* matrices */
    {"NULL descriptor", ANY, 'm', m_null_desc, CLXENT_STATUS_NULL_POINTER, SAME, NULL, 0, BIT(S_P), 0},
    {"NULL buffer", ANY, 'm', m_null_buf, CLXENT_STATUS_NULL_POINTER, SAME, NULL, 0, BIT(S_P), 0},
    {"buffer of another context", ANY, 'm', m_foreign, CLXENT_STATUS_WRONG_CONTEXT, SAME, NULL, 0, 0, 0},
    {"integer dtype", ANY, 'm', m_dtype_int, CLXENT_STATUS_INVALID_DTYPE, SAME, NULL, 0, 0, 0},
    {"unknown dtype 77", ANY, 'm', m_dtype_wild, CLXENT_STATUS_INVALID_DTYPE, SAME, NULL, 0, 0, 0},
    {"f16 against f32 logits", ANY, 'm', m_dtype_f16, CLXENT_STATUS_INVALID_DTYPE, SAME, NULL, 0, NOX | BIT(S_MOUT), 0},
    {"cols 0", ANY, 'm', m_cols0, CLXENT_STATUS_INVALID_SHAPE, SAME, NULL, 0, 0, 0},
    {"rows SIZE_MAX-1", ANY, 'm', m_rows_neg, CLXENT_STATUS_INVALID_SHAPE, SAME, NULL, 0, 0, 0},
    {"cols SIZE_MAX-3", ANY, 'm', m_cols_neg, CLXENT_STATUS_INVALID_SHAPE, SAME, NULL, 0, 0, 0},
    {"stride < cols", ANY, 'm', m_stride_lt, CLXENT_STATUS_INVALID_SHAPE, SAME, "stride", 0, 0, 0},
    {"rows x stride overflows", ANY, 'm', m_rows_stride_ovf, CLXENT_STATUS_SIZE_OVERFLOW, SAME, NULL, 0, 0, 0},
    {"rows x stride x 4 bytes overflows", ANY, 'm', m_bytes_ovf, CLXENT_STATUS_SIZE_OVERFLOW, SAME, NULL, 0, 0, 0},
    {"offset SIZE_MAX-2", ANY, 'm', m_offset_ovf, CLXENT_STATUS_SIZE_OVERFLOW, SAME, NULL, 0, 0, 0},
    {"offset x 4 bytes overflows", ANY, 'm', m_offset_bytes_ovf, CLXENT_STATUS_SIZE_OVERFLOW, SAME, NULL, 0, 0, 0},
    {"offset at the end", ANY, 'm', m_offset_end, CLXENT_STATUS_BUFFER_TOO_SMALL, SAME, NULL, 0, 0, 0},
    {"offset runs past the end", ANY, 'm', m_offset_tail, CLXENT_STATUS_BUFFER_TOO_SMALL, SAME, NULL, 0, 0, 0},
    {"buffer too small", ANY, 'm', m_tiny, CLXENT_STATUS_BUFFER_TOO_SMALL, SAME, NULL, 0, 0, 0},
    {"one row more", ANY, 'm', m_rows_more, CLXENT_STATUS_INVALID_SHAPE, SAME, NULL, 0, NOX, 0},
    {"one class more", ANY, 'm', m_cols_more, CLXENT_STATUS_INVALID_SHAPE, SAME, NULL, 0, NOX, 0},
    /* vectors */
    /* optional vectors: a NULL descriptor or buffer means "not given" */
    {"NULL descriptor", ANY, 'v', v_null_desc, CLXENT_STATUS_NULL_POINTER, SAME, NULL, 0, BIT(S_W) | BIT(S_LSEO) | BIT(S_GR), 0},
    {"NULL buffer", ANY, 'v', v_null_buf, CLXENT_STATUS_NULL_POINTER, SAME, NULL, 0, BIT(S_W) | BIT(S_LSEO) | BIT(S_GR), 0},
    {"buffer of another context", ANY, 'v', v_foreign, CLXENT_STATUS_WRONG_CONTEXT, SAME, NULL, 0, 0, 0},
    {"wrong dtype kind", ANY, 'v', v_dtype, CLXENT_STATUS_INVALID_DTYPE, SAME, NULL, 0, 0, 0},
    {"f16 vector", ANY, 'v', v_dtype_f16, CLXENT_STATUS_INVALID_DTYPE, SAME, NULL, 0, 0, 0},
    {"unknown dtype -3", ANY, 'v', v_dtype_wild, CLXENT_STATUS_INVALID_DTYPE, SAME, NULL, 0, 0, 0},
    {"length + 1", ANY, 'v', v_len_more, CLXENT_STATUS_INVALID_SHAPE, SAME, NULL, 0, 0, 0},
    {"length 0", ANY, 'v', v_len_zero, CLXENT_STATUS_INVALID_SHAPE, SAME, NULL, 0, 0, 0},
    {"length SIZE_MAX", ANY, 'v', v_len_neg, CLXENT_STATUS_INVALID_SHAPE, SAME, NULL, 0, 0, 0},
    {"offset SIZE_MAX-1", ANY, 'v', v_offset_ovf, CLXENT_STATUS_SIZE_OVERFLOW, SAME, NULL, 0, 0, 0},
    {"offset at the end", ANY, 'v', v_offset_end, CLXENT_STATUS_BUFFER_TOO_SMALL, SAME, NULL, 0, 0, 0},
    {"buffer too small", ANY, 'v', v_tiny, CLXENT_STATUS_BUFFER_TOO_SMALL, SAME, NULL, 0, 0, 0},
    /* options */
    {"reduction 3", S_OPT, 0, o_reduction, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "reduction", 0, 0, 0},
    {"reduction -1", S_OPT, 0, o_reduction_neg, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "reduction", 0, 0, 0},
    {"label_smoothing -0.1", S_OPT, 0, o_smooth_neg, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "label_smoothing", 0, 0, 0},
    {"label_smoothing 1.5", S_OPT, 0, o_smooth_big, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "label_smoothing", 0, 0, 0},
    {"label_smoothing NaN", S_OPT, 0, o_smooth_nan, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "label_smoothing", 0, 0, 0},
    {"label_smoothing inf", S_OPT, 0, o_smooth_inf, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "label_smoothing", 0, 0, 0},
    {"z_loss < 0", S_OPT, 0, o_zloss_neg, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "z_loss", 0, 0, 0},
    {"z_loss NaN", S_OPT, 0, o_zloss_nan, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "z_loss", 0, 0, 0},
    {"z_loss inf", S_OPT, 0, o_zloss_inf, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "z_loss", 0, 0, 0},
    {"grad_scale NaN", S_OPT, 0, o_gscale_nan, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "grad_scale", 0, 0, 0},
    {"grad_scale -inf", S_OPT, 0, o_gscale_inf, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "grad_scale", 0, 0, 0},
    {"normalizer < 0", S_OPT, 0, o_norm_neg, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "normalizer", 0, 0, 0},
    {"normalizer NaN", S_OPT, 0, o_norm_nan, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "normalizer", 0, 0, 0},
    {"normalizer inf", S_OPT, 0, o_norm_inf, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "normalizer", 0, 0, 0},
    {"all_ignored_zero 2", S_OPT, 0, o_all_ignored, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "all_ignored_zero", 0, 0, 0},
    {"in_place -1", S_OPT, 0, o_in_place, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "in_place", 0, 0, 0},
    {"target_check 9", S_OPT, 0, o_check, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "target_check", 0, 0, 0},
    {"label_smoothing on NLL", S_OPT, 0, o_nll_smooth, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "label_smoothing", NLL_APIS, 0, 0},
    {"z_loss on NLL", S_OPT, 0, o_nll_zloss, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "z_loss", NLL_APIS, 0, 0},
    /* targets */
    {"targets NULL", S_T, 0, t_null, CLXENT_STATUS_NULL_POINTER, SAME, "targets", 0, 0, 0},
    {"indices and probs", S_T, 0, t_both, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "targets", 0, 0, 0},
    {"neither indices nor probs", S_T, 0, t_neither, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "targets", 0, 0, 0},
    {"ignore_index 0 with probs", S_T, 0, t_probs_ignore, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "ignore_index", 0, 0, 0},
    {"ignore_index -1 with probs", S_T, 0, t_probs_ignore_neg, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "ignore_index", 0, 0, 0},
    {"grad_rows with reduction sum", S_GR, 0, g_rows_sum, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "grad_rows", 0, 0, 0},
    {"grad_rows with reduction mean", S_GR, 0, g_rows_mean, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "grad_rows", 0, 0, 0},
    /* aliasing */
    {"grad is the logits without in_place", S_GRAD, 0, al_grad_is_x, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "in_place", BIT(OPS_CE_BACKWARD) | BIT(OPS_CE_FUSED), 0, 0},
    {"grad overlaps the logits", S_GRAD, 0, al_grad_overlaps_x, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "overlaps", BIT(OPS_CE_BACKWARD) | BIT(OPS_CE_FUSED), 0, 0},
    {"lse in the loss's bytes", S_LSEO, 0, al_lse_in_loss, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "overlaps", 0, 0, 0},
    {"loss in the logits' bytes", S_LOSS, 0, al_loss_in_x, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "overlaps", 0, 0, 0},
    {"out is x", S_MOUT, 0, al_out_is_x, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "overlaps", 0, 0, 0},
    {"out vector in x's bytes", S_VOUT, 0, al_vout_in_x, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "overlaps", 0, 0, 0},
    {"sum_out is row_max", S_VIN, 0, al_vout_is_vin, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "overlaps", 0, 0, 0},
    /* events */
    {"num_wait 1, wait_list NULL", S_EV, 0, ev_null_list, CLXENT_STATUS_NULL_POINTER, SAME, "wait_list", 0, 0, 0},
    {"wait_list with num_wait 0", S_EV, 0, ev_list_no_count, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "wait_list", 0, 0, 0},
    {"NULL event in wait_list", S_EV, 0, ev_null_entry, CLXENT_STATUS_NULL_POINTER, CLXENT_STATUS_INVALID_ARGUMENT, "wait_list", 0, 0, 0},
    {"event of another cl_context", S_EV, 0, ev_foreign, CLXENT_STATUS_WRONG_CONTEXT, CLXENT_STATUS_INVALID_ARGUMENT, "wait_list", 0, 0, 0},
    /* context */
    {"ctx NULL", S_CTX, 0, c_null, CLXENT_STATUS_NULL_POINTER, SAME, "", 0, 0, 0},
    {"ctx whose creation failed", S_CTX, 0, c_failed, CLXENT_STATUS_INVALID_ARGUMENT, SAME, "ctx", 0, 0, 0},
    /* class indices out of range (found when the operation runs) */
    {"target 1000 in row 2", S_Y, 0, y_hi, CLXENT_STATUS_TARGET_OUT_OF_RANGE, SAME, "1000", LOSS_APIS, 0, 0},
    {"target -7 in row 1", S_Y, 0, y_neg, CLXENT_STATUS_TARGET_OUT_OF_RANGE, SAME, "-7", LOSS_APIS, 0, 0},
    {"i64 target 2^40 in row 3", S_Y, 0, y_i64, CLXENT_STATUS_TARGET_OUT_OF_RANGE, SAME, "1099511627776", LOSS_APIS, 0, 0},
    {"-100 with ignore_index 2", S_Y, 0, y_ignore_moved, CLXENT_STATUS_TARGET_OUT_OF_RANGE, SAME, "-100", LOSS_APIS, 0, 0},
    {"target 1000, deferred check", S_Y, 0, y_hi_deferred, CLXENT_STATUS_TARGET_OUT_OF_RANGE, SAME, "1000", LOSS_APIS, 0, 1},
};

/* ---- set-up ---- */

static void make_env(env *e, clxent_context *ctx, clxent_context *other) {
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    e->device = info.backend == CLXENT_BACKEND_OPENCL;
    clxent_status st = clxent_context_create("no-such-device-xyz", &e->failed);
    assert_int_equal(st, CLXENT_STATUS_DEVICE_NOT_FOUND);
    assert_non_null(e->failed);

    fx_rng rng = fx_rng_seed(5);
    float x[CAP], p[CAP], w[C], vin[2 * R];
    fx_fill_uniform(&rng, x, CAP, -3.0f, 3.0f);
    fx_fill_uniform(&rng, p, CAP, 0.0f, 0.3f);
    fx_fill_uniform(&rng, w, C, 0.5f, 2.0f);
    fx_fill_uniform(&rng, vin, 2 * R, 1.0f, 3.0f);
    int32_t y[2 * R] = {0, 5, 2, 3, 1, 1, 1, 1};
    int32_t hi[2 * R] = {0, 5, 1000, 3, 1, 1, 1, 1};
    int32_t neg[2 * R] = {0, -7, 2, 3, 1, 1, 1, 1};
    int64_t i64[2 * R] = {0, 5, 2, (int64_t)1 << 40, 1, 1, 1, 1};
    int32_t ign[2 * R] = {0, -100, 2, 3, 1, 1, 1, 1};
    e->b[B_X] = fx_upload(ctx, x, sizeof x);
    e->b[B_P] = fx_upload(ctx, p, sizeof p);
    e->b[B_Y] = fx_upload(ctx, y, sizeof y);
    e->b[B_W] = fx_upload(ctx, w, sizeof w);
    e->b[B_VIN] = fx_upload(ctx, vin, sizeof vin);
    e->b[B_GR] = fx_upload(ctx, vin, sizeof vin);
    e->b[B_LOSS] = fx_upload(ctx, NULL, 2 * R * 4);
    e->b[B_LSE] = fx_upload(ctx, NULL, 2 * R * 4);
    e->b[B_VOUT] = fx_upload(ctx, NULL, 2 * R * 4);
    e->b[B_GRAD] = fx_upload(ctx, NULL, sizeof x);
    e->b[B_MOUT] = fx_upload(ctx, NULL, sizeof x);
    e->b[B_TINY] = fx_upload(ctx, NULL, 3);
    e->b[B_YBAD_HI] = fx_upload(ctx, hi, sizeof hi);
    e->b[B_YBAD_NEG] = fx_upload(ctx, neg, sizeof neg);
    e->b[B_YBAD_I64] = fx_upload(ctx, i64, sizeof i64);
    e->b[B_YBAD_IGN] = fx_upload(ctx, ign, sizeof ign);
    e->foreign = fx_upload(other, x, sizeof x);
    for (int i = 0; i < B_COUNT; ++i) e->snapshot[i] = fx_download(ctx, e->b[i]);

    if (e->device) {
        /* A user event on the other context's cl_context. */
        cl_context clctx = fx_cl_context(other);
        cl_int err = CL_SUCCESS;
        e->foreign_event = clCreateUserEvent(clctx, &err);
        assert_int_equal(err, CL_SUCCESS);
        assert_int_equal(clSetUserEventStatus(e->foreign_event, CL_COMPLETE),
                         CL_SUCCESS);
    }
}

static void free_env(env *e) {
    for (int i = 0; i < B_COUNT; ++i) {
        clxent_buffer_release(e->b[i]);
        free(e->snapshot[i]);
    }
    clxent_buffer_release(e->foreign);
    if (e->foreign_event) clReleaseEvent(e->foreign_event);
    clxent_context_destroy(e->failed);
}

/* Every buffer still holds what it held. With `restore`, rewrites the
 * ones a valid call changed instead of failing. */
static void check_buffers(env *e, const char *label, int restore) {
    fx_compare_snapshots(e->ctx, e->b, e->snapshot, B_COUNT, label,
                         restore);
}

/* The slots of operation op that fault f applies to. */
static int applies(const fault *f, const ops_desc *op, int *n_slots,
                   int slots[S_COUNT]) {
    if (f->only && !(f->only & BIT(op->id))) return 0;
    unsigned op_slots = slots_of(op);
    *n_slots = 0;
    if (f->slot == ANY) {
        for (int s = 0; s < S_COUNT; ++s) {
            if (!(op_slots & BIT(s)) || (f->except_slots & BIT(s))) continue;
            /* Cross-entropy takes the indices inside clxent_targets: no
             * pointer to pass as NULL, and no buffer means "neither"
             * (a row of its own). */
            if (s == S_Y && (op->io & OPS_TARGETS) &&
                (f->mutate == v_null_desc || f->mutate == v_null_buf))
                continue;
            if ((f->kind == 'm' && is_matrix_slot(s)) ||
                (f->kind == 'v' && is_vector_slot(s)))
                slots[(*n_slots)++] = s;
        }
    } else if (op_slots & BIT(f->slot)) {
        slots[(*n_slots)++] = f->slot;
    }
    return *n_slots > 0;
}

static void run_table(env *e) {
    size_t cases = 0;
    for (int oi = 0; oi < OPS_COUNT; ++oi) {
        const ops_desc *op = &ops_table[oi];
        /* The valid call works before any fault. */
        reset(e);
        fx_assert_status(e->ctx, call(e, op), CLXENT_STATUS_OK);
        fx_assert_status(e->ctx, clxent_finish(e->ctx), CLXENT_STATUS_OK);
        check_buffers(e, op->function, 1);
        for (size_t fi = 0; fi < sizeof FAULTS / sizeof FAULTS[0]; ++fi) {
            const fault *f = &FAULTS[fi];
            int slots[S_COUNT], n = 0;
            if (!applies(f, op, &n, slots)) continue;
            for (int k = 0; k < n; ++k) {
                int s = slots[k];
                if (f->mutate == ev_foreign && !e->foreign_event) continue;
                char label[256];
                snprintf(label, sizeof label, "%s, %s: %s (%s backend)",
                         op->function, slot_name(op, s), f->what,
                         e->device ? "OpenCL" : "host");
                reset(e);
                f->mutate(e, s);
                /* The out-event is written only on success: a failing
                 * call leaves the caller's value (a sentinel here). */
                cl_event out = e->foreign_event;
                if (e->device && !e->ev.out_event) e->ev.out_event = &out;
                clxent_status want =
                    !e->device && f->expect_host != SAME ? f->expect_host
                                                         : f->expect;
                clxent_status got = call(e, op);
                if (got == CLXENT_STATUS_OK && out != e->foreign_event)
                    clReleaseEvent(out);
                else if (out != e->foreign_event)
                    fail_msg("%s: the failing call wrote its out-event",
                             label);
                if (f->deferred && got == CLXENT_STATUS_OK)
                    got = clxent_finish(e->ctx);
                const char *msg = clxent_context_message(
                    e->null_slot == S_CTX ? NULL
                    : e->use_failed       ? e->failed
                                          : e->ctx);
                if (got != want)
                    fail_msg("%s: status %s, expected %s; message: %s", label,
                             clxent_status_name(got), clxent_status_name(want),
                             msg);
                const char *word = f->word ? f->word : slot_name(op, s);
                if (e->null_slot != S_CTX) {
                    if (!strstr(msg, word))
                        fail_msg("%s: message lacks \"%s\": %s", label, word,
                                 msg);
                    if (!strstr(msg, "clxent_"))
                        fail_msg("%s: message lacks the function name: %s",
                                 label, msg);
                }
                /* Nothing enqueued may still be running, nothing written. */
                fx_assert_status(e->ctx, clxent_finish(e->ctx),
                                 CLXENT_STATUS_OK);
                check_buffers(e, label, f->deferred);
                /* The context still works: the valid call right after. */
                reset(e);
                clxent_status st = call(e, op);
                if (st == CLXENT_STATUS_OK) st = clxent_finish(e->ctx);
                if (st != CLXENT_STATUS_OK)
                    fail_msg("%s: the valid call after it failed: %s: %s",
                             label, clxent_status_name(st),
                             clxent_context_message(e->ctx));
                if (clxent_context_message(e->ctx)[0])
                    fail_msg("%s: message not cleared by success: %s", label,
                             clxent_context_message(e->ctx));
                check_buffers(e, label, 1);
                ++cases;
            }
        }
    }
    print_message("%zu bad-input cases on the %s backend\n", cases,
                  e->device ? "OpenCL" : "host");
    assert_true(cases > 400);
}

static void operations(clxent_context *ctx, clxent_context *other) {
    make_env(&E, ctx, other);
    run_table(&E);
    free_env(&E);
}

static void test_operations_host(void **state) {
    (void)state;
    fx_on_pair(0, operations);
}

static void test_operations_device(void **state) {
    (void)state;
    fx_on_pair(1, operations);
}

/* ---- the functions that are not operations ---- */

#define EXPECT(ctx, call, status, word)                                        \
    expect_((ctx), (call), (status), (word), #call, __LINE__)
static void expect_(clxent_context *ctx, clxent_status got,
                    clxent_status want, const char *word, const char *text,
                    int line) {
    const char *msg = clxent_context_message(ctx);
    if (got != want)
        fail_msg("line %d: %s: status %s, expected %s; message: %s", line,
                 text, clxent_status_name(got), clxent_status_name(want), msg);
    if (word && !strstr(msg, word))
        fail_msg("line %d: %s: message lacks \"%s\": %s", line, text, word,
                 msg);
}

static void other_functions(clxent_context *ctx, clxent_context *other) {
    clxent_device_info info;
    clxent_buffer *buf = NULL, *mine = NULL, *theirs = NULL;
    uint64_t ns = 0;
    unsigned char bytes[64];
    memset(bytes, 0x3c, sizeof bytes);
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    int device = info.backend == CLXENT_BACKEND_OPENCL;

    /* Context functions. */
    EXPECT(NULL, clxent_context_create("host", NULL),
           CLXENT_STATUS_NULL_POINTER, NULL);
    EXPECT(NULL, clxent_context_info(NULL, &info), CLXENT_STATUS_NULL_POINTER,
           NULL);
    EXPECT(ctx, clxent_context_info(ctx, NULL), CLXENT_STATUS_NULL_POINTER,
           "info");
    EXPECT(NULL, clxent_finish(NULL), CLXENT_STATUS_NULL_POINTER, NULL);
    EXPECT(NULL, clxent_context_last_time_ns(NULL, &ns),
           CLXENT_STATUS_NULL_POINTER, NULL);
    EXPECT(ctx, clxent_context_last_time_ns(ctx, NULL),
           CLXENT_STATUS_NULL_POINTER, "nanoseconds");
    if (!device)
        EXPECT(ctx, clxent_context_last_time_ns(ctx, &ns),
               CLXENT_STATUS_UNSUPPORTED, "host");
    assert_non_null(clxent_context_message(NULL));
    assert_null(clxent_context_queue(NULL));
    assert_true((clxent_context_queue(ctx) != NULL) == device);
    clxent_context_destroy(NULL);
    clxent_loss_options_init(NULL);
    {
        clxent_context *failed = NULL;
        EXPECT(NULL, clxent_context_create("no-such-device-xyz", &failed),
               CLXENT_STATUS_DEVICE_NOT_FOUND, NULL);
        assert_non_null(failed);
        assert_non_null(strstr(clxent_context_message(failed), "host"));
        EXPECT(failed, clxent_finish(failed), CLXENT_STATUS_INVALID_ARGUMENT,
               "ctx");
        EXPECT(failed, clxent_context_info(failed, &info),
               CLXENT_STATUS_INVALID_ARGUMENT, "ctx");
        EXPECT(failed, clxent_buffer_create(failed, 16, &buf),
               CLXENT_STATUS_INVALID_ARGUMENT, "ctx");
        assert_null(buf);
        assert_null(clxent_context_queue(failed));
        clxent_context_destroy(failed);
        failed = NULL;
        EXPECT(NULL, clxent_context_create_from_queue(NULL, &failed),
               CLXENT_STATUS_NULL_POINTER, NULL);
        assert_non_null(strstr(clxent_context_message(failed), "queue"));
        clxent_context_destroy(failed);
        EXPECT(NULL, clxent_context_create_from_queue(NULL, NULL),
               CLXENT_STATUS_NULL_POINTER, NULL);
    }

    /* Devices. */
    {
        size_t count = 0;
        char message[512] = "";
        EXPECT(NULL, clxent_devices_list(NULL, 0, NULL),
               CLXENT_STATUS_NULL_POINTER, NULL);
        EXPECT(NULL, clxent_devices_list(NULL, 0, &count), CLXENT_STATUS_OK,
               NULL);
        assert_true(count >= 1);
        clxent_device_info one;
        EXPECT(NULL, clxent_devices_list(&one, 1, &count), CLXENT_STATUS_OK,
               NULL);
        EXPECT(NULL, clxent_device_resolve("host", NULL, message,
                                           sizeof message),
               CLXENT_STATUS_NULL_POINTER, NULL);
        EXPECT(NULL, clxent_device_resolve("no-such-device-xyz", &one,
                                           message, sizeof message),
               CLXENT_STATUS_DEVICE_NOT_FOUND, NULL);
        assert_non_null(strstr(message, "host"));
        EXPECT(NULL, clxent_device_resolve("99:99", &one, NULL, 0),
               CLXENT_STATUS_DEVICE_NOT_FOUND, NULL);
        /* A malformed P:D spec, with a message buffer too small. */
        EXPECT(NULL, clxent_device_resolve("0:", &one, message, 4),
               CLXENT_STATUS_INVALID_ARGUMENT, NULL);
        assert_true(strlen(message) < 4);
    }

    /* Buffers. */
    EXPECT(NULL, clxent_buffer_create(NULL, 16, &buf),
           CLXENT_STATUS_NULL_POINTER, NULL);
    EXPECT(ctx, clxent_buffer_create(ctx, 16, NULL),
           CLXENT_STATUS_NULL_POINTER, "buffer");
    EXPECT(ctx, clxent_buffer_create(ctx, 0, &buf),
           CLXENT_STATUS_INVALID_ARGUMENT, "bytes");
    assert_null(buf);
    EXPECT(ctx, clxent_buffer_create(ctx, SIZE_MAX, &buf),
           CLXENT_STATUS_OUT_OF_MEMORY, "clxent_buffer_create");
    assert_null(buf);
    EXPECT(ctx, clxent_buffer_create(ctx, SIZE_MAX / 2 + 1, &buf),
           CLXENT_STATUS_OUT_OF_MEMORY, "clxent_buffer_create");
    assert_null(buf);
    EXPECT(ctx, clxent_buffer_create(ctx, sizeof bytes, &mine),
           CLXENT_STATUS_OK, NULL);
    EXPECT(other, clxent_buffer_create(other, sizeof bytes, &theirs),
           CLXENT_STATUS_OK, NULL);
    EXPECT(ctx, clxent_buffer_write(ctx, mine, 0, sizeof bytes, bytes),
           CLXENT_STATUS_OK, NULL);

    EXPECT(NULL, clxent_buffer_write(NULL, mine, 0, 4, bytes),
           CLXENT_STATUS_NULL_POINTER, NULL);
    EXPECT(ctx, clxent_buffer_write(ctx, NULL, 0, 4, bytes),
           CLXENT_STATUS_NULL_POINTER, "buffer");
    EXPECT(ctx, clxent_buffer_write(ctx, mine, 0, 4, NULL),
           CLXENT_STATUS_NULL_POINTER, "source");
    EXPECT(ctx, clxent_buffer_write(ctx, theirs, 0, 4, bytes),
           CLXENT_STATUS_WRONG_CONTEXT, "buffer");
    EXPECT(ctx, clxent_buffer_write(ctx, mine, 60, 8, bytes),
           CLXENT_STATUS_BUFFER_TOO_SMALL, "byte_offset");
    EXPECT(ctx, clxent_buffer_write(ctx, mine, 65, 0, bytes),
           CLXENT_STATUS_BUFFER_TOO_SMALL, "byte_offset");
    EXPECT(ctx, clxent_buffer_write(ctx, mine, SIZE_MAX - 2, 8, bytes),
           CLXENT_STATUS_SIZE_OVERFLOW, "byte_offset");
    EXPECT(ctx, clxent_buffer_write(ctx, mine, 0, SIZE_MAX, bytes),
           CLXENT_STATUS_BUFFER_TOO_SMALL, "bytes");
    EXPECT(ctx, clxent_buffer_write(ctx, mine, 64, 0, bytes), CLXENT_STATUS_OK,
           NULL);
    EXPECT(ctx, clxent_buffer_write(ctx, mine, 0, 0, NULL), CLXENT_STATUS_OK,
           NULL);

    unsigned char out[64];
    memset(out, 0xee, sizeof out);
    EXPECT(NULL, clxent_buffer_read(NULL, mine, 0, 4, out),
           CLXENT_STATUS_NULL_POINTER, NULL);
    EXPECT(ctx, clxent_buffer_read(ctx, NULL, 0, 4, out),
           CLXENT_STATUS_NULL_POINTER, "buffer");
    EXPECT(ctx, clxent_buffer_read(ctx, mine, 0, 4, NULL),
           CLXENT_STATUS_NULL_POINTER, "destination");
    EXPECT(ctx, clxent_buffer_read(ctx, theirs, 0, 4, out),
           CLXENT_STATUS_WRONG_CONTEXT, "buffer");
    EXPECT(ctx, clxent_buffer_read(ctx, mine, 1, 64, out),
           CLXENT_STATUS_BUFFER_TOO_SMALL, "byte_offset");
    EXPECT(ctx, clxent_buffer_read(ctx, mine, SIZE_MAX, 1, out),
           CLXENT_STATUS_SIZE_OVERFLOW, "byte_offset");
    for (size_t i = 0; i < sizeof out; ++i) assert_int_equal(out[i], 0xee);
    EXPECT(ctx, clxent_buffer_read(ctx, mine, 0, sizeof out, out),
           CLXENT_STATUS_OK, NULL);
    assert_memory_equal(out, bytes, sizeof out);

    /* Wrapping a cl_mem. */
    if (!device) {
        EXPECT(ctx, clxent_buffer_wrap(ctx, (cl_mem)(uintptr_t)1, &buf),
               CLXENT_STATUS_UNSUPPORTED, "host");
    } else {
        EXPECT(ctx, clxent_buffer_wrap(ctx, NULL, &buf),
               CLXENT_STATUS_NULL_POINTER, "mem");
        EXPECT(ctx, clxent_buffer_wrap(ctx, clxent_buffer_mem(mine), NULL),
               CLXENT_STATUS_NULL_POINTER, "buffer");
        EXPECT(ctx, clxent_buffer_wrap(ctx, clxent_buffer_mem(theirs), &buf),
               CLXENT_STATUS_WRONG_CONTEXT, "mem");
        assert_null(buf);
    }
    EXPECT(NULL, clxent_buffer_wrap(NULL, NULL, &buf),
           CLXENT_STATUS_NULL_POINTER, NULL);

    /* Accessors on NULL. */
    clxent_buffer_release(NULL);
    assert_int_equal(clxent_buffer_size(NULL), 0);
    assert_null(clxent_buffer_mem(NULL));
    assert_true((clxent_buffer_mem(mine) != NULL) == device);
    assert_int_equal(clxent_buffer_size(mine), sizeof bytes);

    /* Static helpers on unknown values. */
    assert_int_equal(clxent_dtype_size((clxent_dtype)0), 0);
    assert_int_equal(clxent_dtype_size((clxent_dtype)99), 0);
    assert_string_equal(clxent_dtype_name((clxent_dtype)-1), "unknown");
    assert_non_null(clxent_status_string((clxent_status)-5));
    assert_non_null(clxent_status_string((clxent_status)1000));
    assert_non_null(clxent_status_name((clxent_status)1000));
    assert_non_null(clxent_version());
    assert_true(isnan(clxent_f16_to_f32(clxent_f32_to_f16(NAN))));
    assert_true(isnan(clxent_bf16_to_f32(clxent_f32_to_bf16(NAN))));

    /* The context still works after all that. */
    EXPECT(ctx, clxent_buffer_read(ctx, mine, 0, sizeof out, out),
           CLXENT_STATUS_OK, NULL);
    EXPECT(ctx, clxent_finish(ctx), CLXENT_STATUS_OK, NULL);
    clxent_buffer_release(mine);
    clxent_buffer_release(theirs);
}

/* The blocking form on host arrays. */
static void blocking_form(clxent_context *ctx) {
    float x[R * C], loss[R], grad[R * C], w[C];
    int32_t y[R] = {0, 1, 2, 3}, bad[R] = {0, 1, 6, 3};
    fx_rng rng = fx_rng_seed(9);
    fx_fill_uniform(&rng, x, R * C, -2.0f, 2.0f);
    fx_fill_uniform(&rng, w, C, 0.5f, 1.5f);
    clxent_loss_options opt;
    clxent_loss_options_init(&opt);
    const float sentinel = -12345.0f;
    for (int i = 0; i < R; ++i) loss[i] = sentinel;
    for (int i = 0; i < R * C; ++i) grad[i] = sentinel;

#define BLOCK(ctxp, rows, cols, dt, xs, tdt, ts, opts, lossp, st, word)        \
    EXPECT(ctxp,                                                               \
           clxent_cross_entropy_host(ctxp, rows, cols, dt, xs, tdt, ts, w,     \
                                     opts, lossp, NULL, grad),                 \
           st, word)
    BLOCK(NULL, R, C, CLXENT_F32, x, CLXENT_I32, y, &opt, loss,
          CLXENT_STATUS_NULL_POINTER, NULL);
    BLOCK(ctx, R, C, CLXENT_F32, NULL, CLXENT_I32, y, &opt, loss,
          CLXENT_STATUS_NULL_POINTER, "logits");
    BLOCK(ctx, R, C, CLXENT_F32, x, CLXENT_I32, NULL, &opt, loss,
          CLXENT_STATUS_NULL_POINTER, "targets");
    BLOCK(ctx, R, C, CLXENT_F32, x, CLXENT_I32, y, &opt, NULL,
          CLXENT_STATUS_NULL_POINTER, "loss");
    BLOCK(ctx, R, C, CLXENT_I32, x, CLXENT_I32, y, &opt, loss,
          CLXENT_STATUS_INVALID_DTYPE, "dtype");
    BLOCK(ctx, R, C, (clxent_dtype)42, x, CLXENT_I32, y, &opt, loss,
          CLXENT_STATUS_INVALID_DTYPE, "dtype");
    BLOCK(ctx, R, C, CLXENT_F32, x, CLXENT_F16, y, &opt, loss,
          CLXENT_STATUS_INVALID_DTYPE, "target_dtype");
    BLOCK(ctx, R, C, CLXENT_F32, x, (clxent_dtype)0, y, &opt, loss,
          CLXENT_STATUS_INVALID_DTYPE, "target_dtype");
    /* Shapes past the per-dimension limit are refused before any size
     * arithmetic or allocation; the largest legal shape is simply too big
     * to allocate. */
    BLOCK(ctx, SIZE_MAX / 2, 3, CLXENT_F32, x, CLXENT_I32, y, &opt, loss,
          CLXENT_STATUS_INVALID_SHAPE, "rows x cols");
    BLOCK(ctx, 3, SIZE_MAX / 4 + 1, CLXENT_F32, x, CLXENT_I32, y, &opt, loss,
          CLXENT_STATUS_INVALID_SHAPE, "rows x cols");
    BLOCK(ctx, 0x7fffffff, 0x7fffffff, CLXENT_F32, x, CLXENT_I32, y, &opt,
          loss, CLXENT_STATUS_OUT_OF_MEMORY, "clxent_buffer_create");
    BLOCK(ctx, R, 0, CLXENT_F32, x, CLXENT_I32, y, &opt, loss,
          CLXENT_STATUS_INVALID_SHAPE, "cols");
    BLOCK(ctx, R, C, CLXENT_F32, x, CLXENT_I32, bad, &opt, loss,
          CLXENT_STATUS_TARGET_OUT_OF_RANGE, "6");
    clxent_loss_options o = opt;
    o.label_smoothing = NAN;
    BLOCK(ctx, R, C, CLXENT_F32, x, CLXENT_I32, y, &o, loss,
          CLXENT_STATUS_INVALID_ARGUMENT, "label_smoothing");
    o = opt;
    o.reduction = (clxent_reduction)7;
    BLOCK(ctx, R, C, CLXENT_F32, x, CLXENT_I32, y, &o, loss,
          CLXENT_STATUS_INVALID_ARGUMENT, "reduction");
    o = opt;
    o.ignore_index = 1;
    BLOCK(ctx, R, C, CLXENT_F32, x, CLXENT_F32, x, &o, loss,
          CLXENT_STATUS_INVALID_ARGUMENT, "ignore_index");
    for (int i = 0; i < R; ++i) assert_true(loss[i] == sentinel);
    for (int i = 0; i < R * C; ++i) assert_true(grad[i] == sentinel);
    BLOCK(ctx, R, C, CLXENT_F32, x, CLXENT_I32, y, &opt, loss,
          CLXENT_STATUS_OK, NULL);
    assert_true(isfinite(loss[0]) && loss[0] > 0.0f);
#undef BLOCK
}

static void others(clxent_context *ctx, clxent_context *other) {
    other_functions(ctx, other);
    blocking_form(ctx);
}

static void test_other_host(void **state) {
    (void)state;
    fx_on_pair(0, others);
}

static void test_other_device(void **state) {
    (void)state;
    fx_on_pair(1, others);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations_host),
        cmocka_unit_test(test_other_host),
        cmocka_unit_test(test_operations_device),
        cmocka_unit_test(test_other_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
