/* The loss cases of ops_harness.h. */
#include "ops_harness.h"

hx_case hx_base_case(size_t R, size_t C, clxent_dtype dt, uint64_t seed) {
    hx_case c;
    memset(&c, 0, sizeof c);
    c.R = R;
    c.C = C;
    c.dt = dt;
    c.idt = CLXENT_I32;
    c.ii = -100;
    c.G = 1.0f;
    c.red = CLXENT_REDUCTION_MEAN;
    c.seed = seed;
    return c;
}

size_t hx_nloss(const hx_case *c) {
    return c->red == CLXENT_REDUCTION_NONE ? c->R : 1;
}

hx_data hx_make(const hx_case *c) {
    hx_data d;
    fx_rng rng = fx_rng_seed(c->seed);
    size_t n = c->R * c->C;
    d.x = malloc((n ? n : 1) * sizeof(float));
    d.t = malloc((n ? n : 1) * sizeof(float));
    d.w = malloc((c->C ? c->C : 1) * sizeof(float));
    d.gr = malloc((c->R ? c->R : 1) * sizeof(float));
    d.y = malloc((c->R ? c->R : 1) * sizeof(int64_t));
    assert_non_null(d.x);
    assert_non_null(d.t);
    assert_non_null(d.w);
    assert_non_null(d.gr);
    assert_non_null(d.y);
    for (size_t i = 0; i < n; ++i)
        d.x[i] = fx_round((float)fx_uniform(&rng, -6.0, 6.0), c->dt);
    for (size_t r = 0; r < c->R; ++r) {
        double sum = 0.0;
        for (size_t j = 0; j < c->C; ++j) {
            double v = fx_uniform(&rng, 0.0, 1.0);
            v = v * v * v; /* a few large, many small */
            d.t[r * c->C + j] = (float)v;
            sum += v;
        }
        for (size_t j = 0; j < c->C; ++j)
            d.t[r * c->C + j] =
                fx_round((float)(d.t[r * c->C + j] / sum), c->dt);
        d.y[r] = (int64_t)(fx_next(&rng) % (c->C ? c->C : 1));
        if (c->ignore && fx_next(&rng) % 4 == 0) d.y[r] = c->ii;
        d.gr[r] = (float)fx_uniform(&rng, -2.0, 2.0);
    }
    for (size_t j = 0; j < c->C; ++j)
        d.w[j] = (float)fx_uniform(&rng, 0.25, 2.0);
    return d;
}

void hx_free(hx_data *d) {
    free(d->x);
    free(d->t);
    free(d->w);
    free(d->gr);
    free(d->y);
}

void hx_out_free(hx_out *o) {
    free(o->loss);
    free(o->lse);
    free(o->grad);
    o->loss = o->lse = o->grad = NULL;
}

clxent_loss_options hx_options(const hx_case *c) {
    clxent_loss_options o;
    clxent_loss_options_init(&o);
    o.reduction = c->red;
    o.ignore_index = c->probs ? -100 : c->ii;
    o.label_smoothing = c->eps;
    o.z_loss = c->zeta;
    o.grad_scale = c->G;
    o.normalizer = c->D;
    o.all_ignored_zero = c->all_ignored_zero;
    o.target_check = c->check;
    return o;
}

/* ---- buffers with layouts ---- */

clxent_matrix hx_mat(clxent_context *ctx, const float *vals, size_t R,
                     size_t C, size_t off, size_t ld, clxent_dtype dt) {
    size_t es = clxent_dtype_size(dt);
    size_t n = off + (R ? (R - 1) * ld + C : 0) + 1;
    unsigned char *h = malloc(n * es);
    assert_non_null(h);
    memset(h, 0x7f, n * es);
    if (vals)
        for (size_t r = 0; r < R; ++r)
            for (size_t j = 0; j < C; ++j)
                cli_store(h, off + r * ld + j, dt, vals[r * C + j]);
    clxent_matrix m = {fx_upload(ctx, h, n * es), off, R, C, ld, dt};
    free(h);
    return m;
}

float *hx_mat_read(clxent_context *ctx, const clxent_matrix *m) {
    unsigned char *h = fx_download(ctx, m->buffer);
    size_t n = m->rows * m->cols;
    float *out = malloc((n > 0 ? n : 1) * sizeof(float));
    assert_non_null(out);
    for (size_t r = 0; r < m->rows; ++r)
        for (size_t j = 0; j < m->cols; ++j)
            out[r * m->cols + j] =
                cli_load(h, m->offset + r * m->stride + j, m->dtype);
    free(h);
    return out;
}

clxent_vector hx_vec(clxent_context *ctx, const float *vals,
                     const int64_t *ivals, size_t n, size_t off,
                     clxent_dtype dt) {
    size_t es = clxent_dtype_size(dt);
    size_t total = off + n + 1;
    unsigned char *h = malloc(total * es);
    assert_non_null(h);
    memset(h, 0x7f, total * es);
    for (size_t i = 0; i < n; ++i) {
        if (dt == CLXENT_I32) {
            int32_t v = (int32_t)ivals[i];
            memcpy(h + 4 * (off + i), &v, 4);
        } else if (dt == CLXENT_I64) {
            memcpy(h + 8 * (off + i), &ivals[i], 8);
        } else if (vals) {
            memcpy(h + 4 * (off + i), &vals[i], 4);
        }
    }
    clxent_vector v = {fx_upload(ctx, h, total * es), off, n, dt};
    free(h);
    return v;
}

float *hx_vec_read(clxent_context *ctx, const clxent_vector *v) {
    unsigned char *h = fx_download(ctx, v->buffer);
    float *out = malloc((v->length ? v->length : 1) * sizeof(float));
    assert_non_null(out);
    memcpy(out, h + 4 * v->offset, 4 * v->length);
    free(h);
    return out;
}

clxent_vector hx_no_vec(void) {
    clxent_vector v = {NULL, 0, 0, CLXENT_F32};
    return v;
}

hx_in hx_upload(clxent_context *ctx, const hx_case *c, const hx_data *d) {
    hx_in in;
    memset(&in, 0, sizeof in);
    in.x = hx_mat(ctx, d->x, c->R, c->C, HX_X_OFF, c->C + HX_X_PAD, c->dt);
    if (c->probs)
        in.tg.probs = hx_mat(ctx, d->t, c->R, c->C, HX_T_OFF,
                             c->C + HX_T_PAD, c->dt);
    else
        in.tg.indices = hx_vec(ctx, NULL, d->y, c->R, 1, c->idt);
    in.w = c->weights ? hx_vec(ctx, d->w, NULL, c->C, 2, CLXENT_F32)
                      : hx_no_vec();
    in.gr = c->grad_rows && c->red == CLXENT_REDUCTION_NONE
                ? hx_vec(ctx, d->gr, NULL, c->R, 1, CLXENT_F32)
                : hx_no_vec();
    return in;
}

void hx_in_release(hx_in *in) {
    clxent_buffer_release(in->x.buffer);
    clxent_buffer_release(in->tg.probs.buffer);
    clxent_buffer_release(in->tg.indices.buffer);
    clxent_buffer_release(in->w.buffer);
    clxent_buffer_release(in->gr.buffer);
}

/* Each route as the operations it runs, in order, and whether the
 * gradient overwrites x. */
static const struct {
    ops_id ops[2];
    int in_place;
} routes[4] = {
    [HX_ROUTE_FUSED] = {{OPS_CE_FUSED, OPS_COUNT}, 0},
    [HX_ROUTE_FUSED_IN_PLACE] = {{OPS_CE_FUSED, OPS_COUNT}, 1},
    [HX_ROUTE_FWD_BWD] = {{OPS_CE_FORWARD, OPS_CE_BACKWARD}, 0},
    [HX_ROUTE_FWD_BWD_IN_PLACE] = {{OPS_CE_FORWARD, OPS_CE_BACKWARD}, 1},
};

static const char *expected[OPS_COUNT];

void hx_expect(ops_id op, const char *trace_part) { expected[op] = trace_part; }

void hx_expect_none(void) {
    for (int i = 0; i < OPS_COUNT; ++i) expected[i] = NULL;
}

void hx_check_ran(clxent_context *ctx, ops_id op) {
    clxent_device_info info;
    if (!expected[op] || clxent_context_info(ctx, &info) != CLXENT_STATUS_OK ||
        info.backend == CLXENT_BACKEND_HOST)
        return;
    const char *trace = clxent_context_last_trace(ctx);
    if (!strstr(trace, expected[op]))
        fail_msg("%s did not run the forced strategy \"%s\": %s",
                 ops_table[op].name, expected[op], trace);
}

hx_out hx_run(clxent_context *ctx, const hx_case *c, const hx_data *d,
              int route) {
    hx_out o = {NULL, NULL, NULL};
    hx_in in = hx_upload(ctx, c, d);
    clxent_loss_options opt = hx_options(c);
    int in_place = routes[route].in_place;
    clxent_vector loss = hx_vec(ctx, NULL, NULL, hx_nloss(c), 2, CLXENT_F32);
    clxent_vector lse = hx_vec(ctx, NULL, NULL, c->R, 1, CLXENT_F32);
    clxent_matrix grad = in_place ? in.x
                                  : hx_mat(ctx, NULL, c->R, c->C, HX_G_OFF,
                                           c->C + HX_G_PAD, c->dt);
    /* the forward writes the lse the backward reads */
    ops_args args = {&in.x, &in.tg, &in.tg.indices, &in.w, &opt, &in.gr,
                     &lse, &loss, &lse, &grad, NULL};
    for (int k = 0; k < 2 && routes[route].ops[k] != OPS_COUNT; ++k) {
        const ops_desc *op = &ops_table[routes[route].ops[k]];
        opt.in_place = in_place && (op->io & OPS_GRAD);
        fx_assert_status(ctx, op->enqueue(ctx, &args), CLXENT_STATUS_OK);
        hx_check_ran(ctx, op->id);
    }
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    o.loss = hx_vec_read(ctx, &loss);
    o.lse = hx_vec_read(ctx, &lse);
    o.grad = hx_mat_read(ctx, &grad);
    clxent_buffer_release(loss.buffer);
    clxent_buffer_release(lse.buffer);
    if (!in_place) clxent_buffer_release(grad.buffer);
    hx_in_release(&in);
    return o;
}

void hx_routes_vs_host(clxent_context *dev, const hx_case *c,
                       const hx_data *d, unsigned routes, const char *name) {
    hx_out ref = hx_run(fx_host(), c, d, HX_ROUTE_FUSED);
    for (int route = 0; route < 4; ++route) {
        if (!(routes & HX_ROUTE_BIT(route))) continue;
        hx_out got = hx_run(dev, c, d, route);
        hx_compare_out(c, &got, &ref, name);
        hx_out_free(&got);
    }
    hx_out_free(&ref);
}

/* One rounding of dt at |v| (the spacing of dt there), 0 for f32. */
static double hx_ulp(double v, clxent_dtype dt) {
    if (dt == CLXENT_F32) return 0.0;
    double a = fabs(v);
    if (dt == CLXENT_F16) return fmax(a * 0x1p-10, 0x1p-24);
    return fmax(a * 0x1p-7, 0x1p-133);
}

void hx_compare(const float *got, const float *want, size_t n,
                double abs_tol, double rel_tol, clxent_dtype dt,
                const char *what, const char *name) {
    for (size_t i = 0; i < n; ++i) {
        double g = got[i], w = want[i];
        if (!fx_close(g, w, abs_tol + hx_ulp(w, dt), rel_tol))
            fail_msg("%s: %s[%zu] = %.9g, reference %.9g (|diff| %.3g > "
                     "%.3g)",
                     name, what, i, g, w, fabs(g - w),
                     abs_tol + hx_ulp(w, dt) + rel_tol * fabs(w));
    }
}

void hx_compare_out(const hx_case *c, const hx_out *dev, const hx_out *ref,
                    const char *name) {
    for (size_t i = 0; i < hx_nloss(c); ++i) {
        double w = ref->loss[i];
        float got = dev->loss[i];
        hx_compare(&got, &ref->loss[i], 1, 1.2e-6 * fmax(1.0, fabs(w)), 0.0,
                   CLXENT_F32, "loss", name);
    }
    hx_compare(dev->lse, ref->lse, c->R, 1e-6, 1.2e-6, CLXENT_F32, "lse",
               name);
    hx_compare(dev->grad, ref->grad, c->R * c->C, 1.2e-6, 0.0, c->dt, "grad",
               name);
}

void hx_name(const hx_case *c, char *buf, size_t size) {
    snprintf(buf, size,
             "%zux%zu %s %s%s%s%s red=%d eps=%g z=%g ii=%lld G=%g D=%g",
             c->R, c->C, clxent_dtype_name(c->dt),
             c->probs ? "probs" : clxent_dtype_name(c->idt),
             c->weights ? " w" : "", c->ignore ? " ign" : "",
             c->grad_rows ? " gr" : "", (int)c->red, (double)c->eps,
             (double)c->zeta, (long long)c->ii, (double)c->G, (double)c->D);
}
