/* The operation mix of hard_ops.h: the table of ops.h, each loss
 * operation under three option sets. */
#include "hard_ops.h"

#include "commands.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The option sets a loss operation runs under; the others run once.
 *   none: weights, a per-row upstream gradient, label smoothing 0.1 and
 *         z-loss 1e-4 (cross-entropy only);
 *   mean: no weights, probability targets for cross-entropy;
 *   sum:  weights, grad_scale 0.5, label smoothing 0.05 (cross-entropy). */
enum { SET_NONE, SET_MEAN, SET_SUM, SET_COUNT };
static const char *set_names[SET_COUNT] = {"none", "mean", "sum"};

static clxent_loss_options options_for(const ops_desc *d, int set) {
    clxent_loss_options o;
    clxent_loss_options_init(&o);
    int ce = (d->io & OPS_TARGETS) != 0; /* NLL takes neither smoothing
                                            nor z-loss */
    if (set == SET_NONE) {
        o.reduction = CLXENT_REDUCTION_NONE;
        o.label_smoothing = ce ? 0.1f : 0.0f;
        o.z_loss = ce ? 1e-4f : 0.0f;
    } else if (set == SET_SUM) {
        o.reduction = CLXENT_REDUCTION_SUM;
        o.grad_scale = 0.5f;
        o.label_smoothing = ce ? 0.05f : 0.0f;
    }
    return o;
}

enum { HB_X, HB_P, HB_Y, HB_W, HB_G, HB_VIN, HB_LOSS, HB_VEC, HB_OUT,
       HB_COUNT };

/* Appends the bytes of an output buffer to the blob. */
static clxent_status append(clxent_context *ctx, const clxent_buffer *b,
                            size_t bytes, hard_blob *out) {
    unsigned char *grown = realloc(out->data, out->size + bytes + 1);
    if (!grown) return CLXENT_STATUS_OUT_OF_MEMORY;
    out->data = grown;
    clxent_status st = clxent_buffer_read(ctx, b, 0, bytes,
                                          out->data + out->size);
    out->size += bytes;
    return st;
}

clxent_status hard_run(clxent_context *ctx, const hard_case *k,
                       hard_blob *out, char *error, size_t error_size) {
    size_t R = k->rows, C = k->cols, es = clxent_dtype_size(k->dtype);
    size_t n = R * C;
    size_t bytes[HB_COUNT] = {n * es, n * es, R * 4, C * 4, R * 4,
                              R * 4,  R * 4,  R * 4, n * es};
    clxent_buffer *b[HB_COUNT] = {0};
    clxent_status st = CLXENT_STATUS_OK;
    char what[96] = "setup";
    out->data = NULL;
    out->size = 0;

    unsigned char *x = malloc(n * es + 1), *p = malloc(n * es + 1);
    int32_t *y = malloc(R * 4 + 4);
    float *w = malloc(C * 4 + 4), *g = malloc(R * 4 + 4);
    if (!x || !p || !y || !w || !g) {
        st = CLXENT_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    cli_rng rng = cli_rng_seed(k->seed);
    for (size_t i = 0; i < n; ++i) {
        cli_store(x, i, k->dtype, (float)cli_rng_uniform(&rng, -8.0, 8.0));
        cli_store(p, i, k->dtype,
                  (float)cli_rng_uniform(&rng, 0.0, 2.0 / (double)C));
    }
    for (size_t r = 0; r < R; ++r) {
        y[r] = (int32_t)(cli_rng_next(&rng) % C);
        if (r % 5 == 3) y[r] = -100; /* ignored rows */
        g[r] = (float)cli_rng_uniform(&rng, -1.0, 1.0);
    }
    for (size_t c = 0; c < C; ++c)
        w[c] = (float)cli_rng_uniform(&rng, 0.25, 2.0);

    for (int i = 0; i < HB_COUNT && !st; ++i)
        st = clxent_buffer_create(ctx, bytes[i] ? bytes[i] : 1, &b[i]);
    const void *src[HB_VIN] = {x, p, y, w, g};
    for (int i = 0; i < HB_VIN && !st; ++i)
        st = clxent_buffer_write(ctx, b[i], 0, bytes[i], src[i]);
    if (st) goto done;

    clxent_matrix mx = {b[HB_X], 0, R, C, C, k->dtype};
    clxent_matrix mout = mx;
    mout.buffer = b[HB_OUT];
    clxent_targets ti, tp;
    memset(&ti, 0, sizeof ti);
    memset(&tp, 0, sizeof tp);
    ti.indices = clxent_vector_of(b[HB_Y], R, CLXENT_I32);
    tp.probs = mx;
    tp.probs.buffer = b[HB_P];
    clxent_vector none = {NULL, 0, 0, CLXENT_F32};
    clxent_vector vw = clxent_vector_of(b[HB_W], C, CLXENT_F32);
    clxent_vector vg = clxent_vector_of(b[HB_G], R, CLXENT_F32);
    clxent_vector vin = clxent_vector_of(b[HB_VIN], R, CLXENT_F32);
    clxent_vector vvec = clxent_vector_of(b[HB_VEC], R, CLXENT_F32);

    for (int op = 0; op < OPS_COUNT && !st; ++op) {
        const ops_desc *d = &ops_table[op];
        int sets = d->io & OPS_OPTIONS ? SET_COUNT : 1;
        for (int set = 0; set < sets && !st; ++set) {
            clxent_loss_options opt = options_for(d, set);
            size_t nloss = opt.reduction == CLXENT_REDUCTION_NONE ? R : 1;
            clxent_vector vloss = clxent_vector_of(b[HB_LOSS], nloss,
                                                   CLXENT_F32);
            ops_args a = {&mx,
                          set == SET_MEAN ? &tp : &ti,
                          &ti.indices,
                          set == SET_MEAN ? &none : &vw,
                          &opt,
                          set == SET_NONE ? &vg : &none,
                          &vin,
                          &vloss,
                          &vvec,
                          &mout,
                          NULL};
            if (d->input_from != OPS_COUNT) {
                /* the row max or lse this operation reads, into vin */
                const ops_desc *pre = &ops_table[d->input_from];
                ops_args pa = a;
                pa.vec_out = &vin;
                snprintf(what, sizeof what, "%s (%s, for %s)", pre->function,
                         set_names[set], d->function);
                if ((st = pre->enqueue(ctx, &pa))) break;
            }
            snprintf(what, sizeof what, "%s (%s)", d->function,
                     set_names[set]);
            if ((st = d->enqueue(ctx, &a)) || (st = clxent_finish(ctx)))
                break;
            snprintf(what, sizeof what, "reading %s (%s)", d->function,
                     set_names[set]);
            /* only what the operation writes: the rest is stale */
            if (d->io & OPS_LOSS)
                st = append(ctx, b[HB_LOSS], nloss * 4, out);
            if (!st && d->io & (OPS_VEC_OUT | OPS_LSE_OUT))
                st = append(ctx, b[HB_VEC], R * 4, out);
            if (!st && d->io & (OPS_MAT_OUT | OPS_GRAD))
                st = append(ctx, b[HB_OUT], n * es, out);
        }
    }
done:
    if (st && error)
        snprintf(error, error_size, "%zu x %zu %s, %s: %s: %s", R, C,
                 clxent_dtype_name(k->dtype), what, clxent_status_name(st),
                 clxent_context_message(ctx));
    if (st) {
        free(out->data);
        out->data = NULL;
        out->size = 0;
    }
    for (int i = 0; i < HB_COUNT; ++i) clxent_buffer_release(b[i]);
    free(x);
    free(p);
    free(y);
    free(w);
    free(g);
    return st;
}

long hard_diff(const hard_blob *a, const hard_blob *b) {
    if (a->size != b->size) return 0;
    for (size_t i = 0; i < a->size; ++i)
        if (a->data[i] != b->data[i]) return (long)i;
    return -1;
}
