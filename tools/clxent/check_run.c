/* Inputs and execution of one `clxent check` case. Inputs are generated
 * once on the host and uploaded bit for bit to both contexts; padding
 * between rows holds NaN so a kernel that reads outside its row shows up
 * as a large error, and output padding is pre-filled with a pattern that
 * must survive. */
#include "check.h"
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PAD_BYTE 0x5a

static const char *family_names[CF_N_FAMILIES] = {
    "-", "plain", "sum", "none", "weights", "smoothing", "ignore_index",
    "z-loss", "probs", "all"};

const char *check_family_name(check_family f) { return family_names[f]; }

/* NLL takes neither smoothing, z-loss nor probabilities; cross-entropy
 * takes every family; operations without options take none. */
int check_family_applies(const ops_desc *op, check_family f) {
    if (op->io & OPS_TARGETS) return f != CF_NA;
    if (op->io & OPS_INDICES)
        return f == CF_PLAIN || f == CF_SUM || f == CF_NONE ||
               f == CF_WEIGHTS || f == CF_IGNORE;
    return f == CF_NA;
}

/* A float matrix in storage type dtype: logical values uniform in
 * [lo, hi), NaN padding. */
static void *make_matrix(cli_rng *rng, const check_shape *s, clxent_dtype dtype,
                         size_t elems, float lo, float hi, int normalise) {
    float *f = malloc(elems * sizeof(float) + 4);
    if (!f) return NULL;
    for (size_t i = 0; i < elems; i++) f[i] = NAN;
    for (size_t r = 0; r < s->rows; r++) {
        float *row = f + s->offset + r * s->stride;
        double sum = 0;
        for (size_t c = 0; c < s->cols; c++) {
            row[c] = (float)cli_rng_uniform(rng, lo, hi);
            sum += row[c];
        }
        for (size_t c = 0; normalise && c < s->cols; c++)
            row[c] = (float)(row[c] / sum);
    }
    void *out = cli_from_f32(f, elems, dtype);
    free(f);
    return out;
}

static void set_options(const check_case *c, check_inputs *in) {
    clxent_loss_options *o = &in->opt;
    clxent_loss_options_init(o);
    switch (c->family) {
    case CF_SUM: o->reduction = CLXENT_REDUCTION_SUM; break;
    case CF_NONE: o->reduction = CLXENT_REDUCTION_NONE; break;
    case CF_SMOOTHING: o->label_smoothing = 0.1f; break;
    case CF_IGNORE: o->ignore_index = c->shape.cols > 1 ? 1 : -100; break;
    case CF_ZLOSS: o->z_loss = 1e-2f; break;
    case CF_ALL:
        o->reduction = CLXENT_REDUCTION_SUM;
        o->label_smoothing = 0.25f;
        o->ignore_index = c->shape.cols > 1 ? 1 : -100;
        o->z_loss = 1e-3f;
        o->grad_scale = 0.5f;
        break;
    default: break;
    }
}

static clxent_status fill_targets(cli_rng *rng, const check_case *c,
                                  check_inputs *in) {
    const check_shape *s = &c->shape;
    int ignore = c->family == CF_IGNORE || c->family == CF_ALL;
    size_t isz = clxent_dtype_size(c->idx_dtype);
    in->idx = malloc(s->rows * isz + 8);
    if (!in->idx) return CLXENT_STATUS_OUT_OF_MEMORY;
    for (size_t r = 0; r < s->rows; r++) {
        int64_t y = (int64_t)(cli_rng_next(rng) % s->cols);
        if (ignore && r % 3 == 1) y = in->opt.ignore_index;
        if (c->idx_dtype == CLXENT_I64) ((int64_t *)in->idx)[r] = y;
        else ((int32_t *)in->idx)[r] = (int32_t)y;
    }
    if (c->family == CF_PROBS) {
        in->probs = make_matrix(rng, s, c->dtype, in->x_elems, 0.0f, 1.0f, 1);
        if (!in->probs) return CLXENT_STATUS_OUT_OF_MEMORY;
    }
    if (c->family == CF_WEIGHTS || c->family == CF_ALL) {
        in->weights = malloc(s->cols * sizeof(float));
        if (!in->weights) return CLXENT_STATUS_OUT_OF_MEMORY;
        for (size_t i = 0; i < s->cols; i++)
            in->weights[i] = (float)cli_rng_uniform(rng, 0.5, 1.5);
    }
    if (in->opt.reduction == CLXENT_REDUCTION_NONE &&
        (ops_table[c->op].io & OPS_GRAD_ROWS)) {
        in->grad_rows = malloc(s->rows * sizeof(float) + 4);
        if (!in->grad_rows) return CLXENT_STATUS_OUT_OF_MEMORY;
        for (size_t r = 0; r < s->rows; r++)
            in->grad_rows[r] = (float)cli_rng_uniform(rng, 0.5, 1.5);
    }
    return CLXENT_STATUS_OK;
}

clxent_status check_inputs_make(clxent_context *host, const check_case *c,
                                unsigned long long seed, check_inputs *in,
                                const char **what) {
    memset(in, 0, sizeof *in);
    cli_rng rng = cli_rng_seed(seed);
    const check_shape *s = &c->shape;
    const ops_desc *d = &ops_table[c->op];
    *what = "generating inputs";
    /* copy converts f32 into the case's type */
    in->x_dtype = c->op == OPS_COPY ? CLXENT_F32 : c->dtype;
    in->x_elems = s->offset + s->rows * s->stride;
    int nll = (d->io & OPS_INDICES) != 0; /* x holds log-probabilities */
    in->x = make_matrix(&rng, s, in->x_dtype, in->x_elems, nll ? -8.0f : -4.0f,
                        nll ? 0.0f : 4.0f, 0);
    if (!in->x) return CLXENT_STATUS_OUT_OF_MEMORY;
    set_options(c, in);
    clxent_status st = d->io & OPS_OPTIONS ? fill_targets(&rng, c, in)
                                           : CLXENT_STATUS_OK;
    if (st != CLXENT_STATUS_OK || d->input_from == OPS_COUNT) return st;
    /* The expsum takes the row max, the backward the saved lse: both come
     * from the host reference so the two runs see the same input. */
    check_case pre = *c;
    pre.op = d->input_from;
    check_outputs out;
    st = check_run(host, &pre, in, &out, what);
    if (st != CLXENT_STATUS_OK) return st;
    in->vec_in = malloc(s->rows * sizeof(float) + 4);
    if (!in->vec_in) st = CLXENT_STATUS_OUT_OF_MEMORY;
    else if (s->rows)
        memcpy(in->vec_in, out.vec + (out.nvec - s->rows),
               s->rows * sizeof(float));
    check_outputs_free(&out);
    return st;
}

void check_inputs_free(check_inputs *in) {
    free(in->x); free(in->idx); free(in->probs); free(in->weights);
    free(in->grad_rows); free(in->vec_in);
    memset(in, 0, sizeof *in);
}

void check_outputs_free(check_outputs *out) {
    free(out->vec);
    free(out->mat);
    memset(out, 0, sizeof *out);
}

/* A buffer of at least one byte holding data (or PAD_BYTE when NULL). */
static clxent_status make_buffer(clxent_context *ctx, const void *data,
                                 size_t bytes, clxent_buffer **buf) {
    size_t size = bytes ? bytes : 4;
    clxent_status st = clxent_buffer_create(ctx, size, buf);
    if (st != CLXENT_STATUS_OK) return st;
    unsigned char *fill = NULL;
    if (!data) {
        if (!(fill = malloc(size))) return CLXENT_STATUS_OUT_OF_MEMORY;
        memset(fill, PAD_BYTE, size);
    }
    st = clxent_buffer_write(ctx, *buf, 0, data ? bytes : size,
                             data ? data : fill);
    free(fill);
    return st;
}

enum { B_X, B_IDX, B_PROBS, B_W, B_GR, B_VIN, B_LOSS, B_VEC, B_MAT, B_N };

/* Enqueues the operation itself on buffers b. */
static clxent_status enqueue(clxent_context *ctx, const check_case *c,
                             const check_inputs *in, clxent_buffer **b,
                             size_t nloss) {
    const check_shape *s = &c->shape;
    clxent_matrix mx = {b[B_X], s->offset, s->rows, s->cols, s->stride,
                        in->x_dtype};
    clxent_matrix mout = {b[B_MAT], s->offset, s->rows, s->cols, s->stride,
                          c->dtype};
    clxent_vector none = {0};
    clxent_vector vidx = clxent_vector_of(b[B_IDX], s->rows, c->idx_dtype);
    clxent_vector vw = in->weights ? clxent_vector_of(b[B_W], s->cols, CLXENT_F32)
                                   : none;
    clxent_vector vgr = in->grad_rows
                            ? clxent_vector_of(b[B_GR], s->rows, CLXENT_F32)
                            : none;
    clxent_vector vin = clxent_vector_of(b[B_VIN], s->rows, CLXENT_F32);
    clxent_vector vloss = clxent_vector_of(b[B_LOSS], nloss, CLXENT_F32);
    clxent_vector vvec = clxent_vector_of(b[B_VEC], s->rows, CLXENT_F32);
    clxent_targets t = {vidx, {0}};
    if (in->probs) {
        t.indices = none;
        t.probs = mx;
        t.probs.buffer = b[B_PROBS];
    }
    ops_args args = {&mx, &t, &vidx, &vw, &in->opt, &vgr, &vin, &vloss,
                     &vvec, &mout, NULL};
    return ops_table[c->op].enqueue(ctx, &args);
}

/* Reads the outputs the op wrote: vector results and the matrix. */
static clxent_status read_outputs(clxent_context *ctx, const check_case *c,
                                  clxent_buffer **b, size_t nloss,
                                  size_t mat_bytes, check_outputs *out) {
    const check_shape *s = &c->shape;
    unsigned io = ops_table[c->op].io;
    int has_loss = (io & OPS_LOSS) != 0;
    int has_vec = (io & (OPS_VEC_OUT | OPS_LSE_OUT)) != 0;
    int has_mat = (io & (OPS_MAT_OUT | OPS_GRAD)) != 0;
    out->nvec = (has_loss ? nloss : 0) + (has_vec ? s->rows : 0);
    out->vec = malloc(out->nvec * sizeof(float) + 4);
    if (!out->vec) return CLXENT_STATUS_OUT_OF_MEMORY;
    clxent_status st = CLXENT_STATUS_OK;
    if (has_loss)
        st = clxent_buffer_read(ctx, b[B_LOSS], 0, nloss * 4, out->vec);
    if (st == CLXENT_STATUS_OK && has_vec)
        st = clxent_buffer_read(ctx, b[B_VEC], 0, s->rows * 4,
                                out->vec + (has_loss ? nloss : 0));
    if (st != CLXENT_STATUS_OK || !has_mat) return st;
    size_t esz = clxent_dtype_size(c->dtype);
    unsigned char *raw = malloc(mat_bytes + 4);
    out->nmat = s->rows * s->cols;
    out->mat = malloc(out->nmat * sizeof(float) + 4);
    if (!raw || !out->mat) {
        free(raw);
        return CLXENT_STATUS_OUT_OF_MEMORY;
    }
    st = clxent_buffer_read(ctx, b[B_MAT], 0, mat_bytes, raw);
    float *all = st == CLXENT_STATUS_OK ? cli_to_f32(raw, mat_bytes / esz,
                                                     c->dtype) : NULL;
    if (st == CLXENT_STATUS_OK && !all) st = CLXENT_STATUS_OUT_OF_MEMORY;
    out->padding_ok = 1;
    for (size_t i = 0; st == CLXENT_STATUS_OK && i < mat_bytes / esz; i++) {
        size_t rel = i - s->offset, r = rel / s->stride, col = rel % s->stride;
        if (i >= s->offset && r < s->rows && col < s->cols)
            out->mat[r * s->cols + col] = all[i];
        else
            for (size_t k = 0; k < esz; k++)
                out->padding_ok &= raw[i * esz + k] == PAD_BYTE;
    }
    free(all);
    free(raw);
    return st;
}

clxent_status check_run(clxent_context *ctx, const check_case *c,
                        const check_inputs *in, check_outputs *out,
                        const char **what) {
    memset(out, 0, sizeof *out);
    const check_shape *s = &c->shape;
    size_t nloss = in->opt.reduction == CLXENT_REDUCTION_NONE ? s->rows : 1;
    size_t isz = clxent_dtype_size(c->idx_dtype);
    size_t mat_bytes = in->x_elems * clxent_dtype_size(c->dtype);
    clxent_buffer *b[B_N] = {0};
    clxent_status st;
    *what = "uploading inputs";
    if ((st = make_buffer(ctx, in->x, in->x_elems *
                          clxent_dtype_size(in->x_dtype), &b[B_X])) ||
        (st = make_buffer(ctx, in->idx, in->idx ? s->rows * isz : 0,
                          &b[B_IDX])) ||
        (st = make_buffer(ctx, in->probs, in->probs ? mat_bytes : 0,
                          &b[B_PROBS])) ||
        (st = make_buffer(ctx, in->weights, in->weights ? s->cols * 4 : 0,
                          &b[B_W])) ||
        (st = make_buffer(ctx, in->grad_rows, in->grad_rows ? s->rows * 4 : 0,
                          &b[B_GR])) ||
        (st = make_buffer(ctx, in->vec_in, in->vec_in ? s->rows * 4 : 0,
                          &b[B_VIN])) ||
        (st = make_buffer(ctx, NULL, nloss * 4, &b[B_LOSS])) ||
        (st = make_buffer(ctx, NULL, s->rows * 4, &b[B_VEC])) ||
        (st = make_buffer(ctx, NULL, mat_bytes, &b[B_MAT])))
        goto done;
    *what = ops_table[c->op].name;
    if ((st = enqueue(ctx, c, in, b, nloss)) || (st = clxent_finish(ctx)))
        goto done;
    *what = "reading outputs";
    st = read_outputs(ctx, c, b, nloss, mat_bytes, out);
done:
    for (int i = 0; i < B_N; i++) clxent_buffer_release(b[i]);
    if (st != CLXENT_STATUS_OK) check_outputs_free(out);
    return st;
}
