/* The N-d cases of nd_harness.h. */
#include "nd_harness.h"

/* ---- layouts ---- */

static const char *x_kind_name[X_KINDS + 2] = {
    "contig", "padded", "clast", "clast-pad", "perm", "cout", "bcast-cl",
    "bcast-nd"};

lay x_layout(int k, size_t O, size_t C, size_t I) {
    lay L = {0, C * I, I, 1};
    switch (k) {
    case X_PADDED: L = (lay){3, C * (2 * I + 1) + 5, 2 * I + 1, 2}; break;
    case X_CLAST: L = (lay){2, I * C, 1, C}; break;
    case X_CLAST_PAD: L = (lay){1, I * (C + 3) + 2, 1, C + 3}; break;
    case X_PERM: L = (lay){5, 1, O, O * C}; break;
    case X_COUT: L = (lay){4, I, O * I, 1}; break;
    case X_BCAST_CL: L = (lay){2, C, 1, 0}; break;
    case X_BCAST_ND: L = (lay){1, 2 * C + 1, 2, 0}; break;
    }
    return L;
}

static const char *r_kind_name[R_KINDS + 1] = {"compact", "strided", "trans",
                                               "bcast"};

static lay r_layout(int k, size_t O, size_t I) {
    switch (k) {
    case R_STRIDED: return (lay){1, 2 * I + 3, 0, 2};
    case R_TRANS: return (lay){2, 1, 7, O};
    case R_BCAST: return (lay){1, 1, 0, 0}; /* inputs: one per outer */
    }
    return (lay){0, I, 7, 1};
}

static size_t lay_at(const lay *L, size_t o, size_t c, size_t i) {
    return L->off + o * L->so + c * L->sc + i * L->si;
}

/* Elements of the buffer: past the highest element, two of padding. */
static size_t lay_elems(const lay *L, size_t O, size_t C, size_t I) {
    if (!O || !I) return L->off + 3;
    return lay_at(L, O - 1, C - 1, I - 1) + 3;
}

clxent_tensor t_make(clxent_context *ctx, const float *vals,
                     const int64_t *ivals, size_t O, size_t C, size_t I,
                     lay L, clxent_dtype dt) {
    size_t es = clxent_dtype_size(dt), n = lay_elems(&L, O, C, I);
    unsigned char *h = malloc(n * es);
    assert_non_null(h);
    memset(h, 0x7f, n * es);
    for (size_t o = 0; o < O; ++o)
        for (size_t c = 0; c < C; ++c)
            for (size_t i = 0; i < I; ++i) {
                size_t k = (o * C + c) * I + i, at = lay_at(&L, o, c, i);
                if (dt == CLXENT_I32) {
                    int32_t v = (int32_t)ivals[k];
                    memcpy(h + 4 * at, &v, 4);
                } else if (dt == CLXENT_I64) {
                    memcpy(h + 8 * at, &ivals[k], 8);
                } else if (vals) {
                    cli_store(h, at, dt, vals[k]);
                }
            }
    clxent_tensor t = {fx_upload(ctx, h, n * es), L.off, O, C, I, L.so, L.sc,
                       L.si, dt, 0, {0}};
    free(h);
    return t;
}

clxent_tensor rows_make(clxent_context *ctx, const float *vals,
                        const int64_t *ivals, size_t O, size_t I, int kind,
                        clxent_dtype dt) {
    return t_make(ctx, vals, ivals, O, 1, I, r_layout(kind, O, I), dt);
}

/* A 1 x 1 x 1 tensor (a reduced loss) at offset 1. */
static clxent_tensor scalar_make(clxent_context *ctx) {
    return t_make(ctx, NULL, NULL, 1, 1, 1, (lay){1, 1, 1, 1}, CLXENT_F32);
}

clxent_tensor no_tensor(void) {
    clxent_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = CLXENT_F32;
    return t;
}

/* The tensor's values in canonical order as f32; fails when a byte
 * outside its elements is not the fill pattern any more. */
static float *t_read(clxent_context *ctx, const clxent_tensor *t,
                     const char *what, const char *name) {
    unsigned char *h = fx_download(ctx, t->buffer);
    size_t es = clxent_dtype_size(t->dtype);
    size_t nb = clxent_buffer_size(t->buffer), ne = nb / es;
    size_t n = t->outer * t->classes * t->inner;
    float *out = malloc((n ? n : 1) * sizeof(float));
    unsigned char *mine = calloc(ne ? ne : 1, 1);
    assert_non_null(out);
    assert_non_null(mine);
    for (size_t o = 0; o < t->outer; ++o)
        for (size_t c = 0; c < t->classes; ++c)
            for (size_t i = 0; i < t->inner; ++i) {
                size_t at = t->offset + o * t->outer_stride +
                            c * t->class_stride + i * t->inner_stride;
                out[(o * t->classes + c) * t->inner + i] =
                    cli_load(h, at, t->dtype);
                mine[at] = 1;
                size_t b = 0;
                while (b < es && h[at * es + b] == 0x7f) ++b;
                if (b == es)
                    fail_msg("%s: %s left element (%zu, %zu, %zu) unwritten "
                             "(the fill pattern)",
                             name, what, o, c, i);
            }
    for (size_t e = 0; e < ne; ++e) {
        if (mine[e]) continue;
        for (size_t b = 0; b < es; ++b)
            if (h[e * es + b] != 0x7f)
                fail_msg("%s: %s wrote element %zu of its buffer, outside "
                         "its %zu x %zu x %zu elements (offset %zu, strides "
                         "%zu %zu %zu)",
                         name, what, e, t->outer, t->classes, t->inner,
                         t->offset, t->outer_stride, t->class_stride,
                         t->inner_stride);
    }
    free(mine);
    free(h);
    return out;
}

void t_free(clxent_tensor *t) {
    clxent_buffer_release(t->buffer);
    t->buffer = NULL;
}

/* ---- one case ---- */

nd_data nd_make(const nd_case *c) {
    nd_data d;
    fx_rng rng = fx_rng_seed(c->seed);
    size_t n = n_elems(c), R = n_rows(c), C = c->C, I = c->I;
    d.x = malloc((n ? n : 1) * sizeof(float));
    d.t = malloc((n ? n : 1) * sizeof(float));
    d.w = malloc(C * sizeof(float));
    d.gr = malloc((R ? R : 1) * sizeof(float));
    d.y = malloc((R ? R : 1) * sizeof(int64_t));
    assert_non_null(d.x);
    assert_non_null(d.t);
    assert_non_null(d.w);
    assert_non_null(d.gr);
    assert_non_null(d.y);
    for (size_t k = 0; k < n; ++k)
        d.x[k] = fx_round((float)fx_uniform(&rng, -c->xr, c->xr), c->dt);
    for (size_t o = 0; o < c->O; ++o)
        for (size_t i = 0; i < I; ++i) {
            double sum = 0.0;
            for (size_t j = 0; j < C; ++j) {
                double v = fx_uniform(&rng, 0.0, 1.0);
                v = v * v * v;
                d.t[(o * C + j) * I + i] = (float)v;
                sum += v;
            }
            for (size_t j = 0; j < C; ++j) {
                float *p = &d.t[(o * C + j) * I + i];
                *p = fx_round((float)(*p / sum), c->dt);
            }
        }
    for (size_t r = 0; r < R; ++r) {
        d.y[r] = (int64_t)(fx_next(&rng) % C);
        if (c->ignore && fx_next(&rng) % 4 == 0) d.y[r] = c->ii;
        d.gr[r] = (float)fx_uniform(&rng, -2.0, 2.0);
    }
    for (size_t j = 0; j < C; ++j)
        d.w[j] = (float)fx_uniform(&rng, 0.25, 2.0);
    return d;
}

void nd_free(nd_data *d) {
    free(d->x);
    free(d->t);
    free(d->w);
    free(d->gr);
    free(d->y);
}

void nd_name(const nd_case *c, char *buf, size_t size) {
    snprintf(buf, size,
             "(%zu, %zu, %zu) %s->%s x:%s out:%s rows:%s in-rows:%s "
             "%s%s%s%s%s%s%s red=%d "
             "ii=%lld eps=%g z=%g cap=%g scale=%g G=%g D=%g seed=%llu",
             c->O, c->C, c->I, clxent_dtype_name(c->dt),
             clxent_dtype_name(c->odt), x_kind_name[c->xl],
             x_kind_name[c->ol], r_kind_name[c->rl],
             c->yl >= 0 ? r_kind_name[c->yl] : "shifted",
             c->probs ? "probs" : clxent_dtype_name(c->idt),
             c->weights ? " w" : "", c->ignore ? " ign" : "",
             c->grad_rows ? " gr" : "", c->zout ? " zout" : "",
             c->in_place ? " inplace" : "",
             c->deferred ? " deferred" : "", (int)c->red, (long long)c->ii,
             (double)c->eps, (double)c->zeta, (double)c->cap,
             (double)c->scale, (double)c->G, (double)c->D,
             (unsigned long long)c->seed);
}

const char *const o_name[O_COUNT] = {
    "row_max_nd",          "row_expsum_nd",       "log_softmax_nd",
    "softmax_nd",          "copy_nd",             "nll_loss_nd",
    "nll_loss_backward_nd", "forward_nd loss",    "forward_nd lse",
    "forward_nd z_loss_out", "backward_nd grad",  "cross_entropy_nd loss",
    "cross_entropy_nd lse", "cross_entropy_nd z_loss_out",
    "cross_entropy_nd grad", "cross_entropy_nd grad in place",
    "cross_entropy_nd loss in place"};

static void keep_trace(const clxent_context *ctx, char *to, size_t size) {
    const char *t = clxent_context_last_trace(ctx);
    snprintf(to, size, "%s", t ? t : "");
}

void res_free(nd_res *r) {
    for (int k = 0; k < O_COUNT; ++k) {
        free(r->v[k]);
        r->v[k] = NULL;
    }
}

static clxent_options case_options(const nd_case *c) {
    clxent_options o;
    clxent_options_init(&o);
    o.loss.reduction = c->red;
    o.loss.ignore_index = c->probs ? -100 : c->ii;
    o.loss.label_smoothing = c->eps;
    o.loss.z_loss = c->zeta;
    o.loss.grad_scale = c->G;
    o.loss.normalizer = c->D;
    o.softcap = c->cap;
    o.logit_scale = c->scale;
    o.loss.target_check = c->deferred ? CLXENT_CHECK_DEFERRED
                                      : CLXENT_CHECK_SYNC;
    return o;
}

static clxent_tensor loss_make(clxent_context *ctx, const nd_case *c) {
    return c->red == CLXENT_REDUCTION_NONE
               ? rows_make(ctx, NULL, NULL, c->O, c->I, c->rl, CLXENT_F32)
               : scalar_make(ctx);
}

nd_res run_all(clxent_context *ctx, const nd_case *c, const nd_data *d,
               const nd_res *ref, const char *name) {
    nd_res r;
    memset(&r, 0, sizeof r);
    const nd_res *in = ref ? ref : &r;
    size_t O = c->O, C = c->C, I = c->I;
    lay xl = x_layout(c->xl, O, C, I), ol = x_layout(c->ol, O, C, I);
    clxent_tensor x = t_make(ctx, d->x, NULL, O, C, I, xl, c->dt);
    clxent_options opt = case_options(c);
    clxent_options plain;
    clxent_options_init(&plain);
    plain.softcap = c->cap;
    plain.logit_scale = c->scale;

    /* primitives */
    clxent_tensor vmax = rows_make(ctx, NULL, NULL, O, I, c->rl, CLXENT_F32);
    OK(ctx, clxent_row_max_nd(ctx, &x, &vmax, NULL));
    r.v[O_MAX] = t_read(ctx, &vmax, o_name[O_MAX], name);
    clxent_tensor vin =
        rows_make(ctx, in->v[O_MAX], NULL, O, I,
                  c->yl >= 0 ? c->yl : (c->rl + 1) % R_KINDS, CLXENT_F32);
    clxent_tensor vsum = rows_make(ctx, NULL, NULL, O, I, c->rl, CLXENT_F32);
    OK(ctx, clxent_row_expsum_nd(ctx, &x, &vin, &vsum, NULL));
    r.v[O_SUM] = t_read(ctx, &vsum, o_name[O_SUM], name);
    t_free(&vmax);
    t_free(&vin);
    t_free(&vsum);

    clxent_tensor out = t_make(ctx, NULL, NULL, O, C, I, ol, c->odt);
    OK(ctx, clxent_log_softmax_nd(ctx, &x, &plain, &out, NULL));
    r.v[O_LSM] = t_read(ctx, &out, o_name[O_LSM], name);
    t_free(&out);
    out = t_make(ctx, NULL, NULL, O, C, I, ol, c->odt);
    OK(ctx, clxent_softmax_nd(ctx, &x, &plain, &out, NULL));
    keep_trace(ctx, r.trace_sm, sizeof r.trace_sm);
    r.v[O_SM] = t_read(ctx, &out, o_name[O_SM], name);
    t_free(&out);
    out = t_make(ctx, NULL, NULL, O, C, I, ol, c->odt);
    OK(ctx, clxent_copy_nd(ctx, &x, &out, NULL));
    r.v[O_COPY] = t_read(ctx, &out, o_name[O_COPY], name);
    t_free(&out);

    /* NLL over the host's log-probabilities */
    clxent_vector w = c->weights ? hx_vec(ctx, d->w, NULL, C, 2, CLXENT_F32)
                                 : hx_no_vec();
    clxent_tensor y = rows_make(ctx, NULL, d->y, O, I,
                                c->yl >= 0 ? c->yl : c->rl, c->idt);
    clxent_tensor gr = c->grad_rows && c->red == CLXENT_REDUCTION_NONE
                           ? rows_make(ctx, d->gr, NULL, O, I,
                                       c->yl >= 0 ? c->yl
                                                  : (c->rl + 2) % R_KINDS,
                                       CLXENT_F32)
                           : no_tensor();
    {
        clxent_options no;
        clxent_options_init(&no);
        no.loss.reduction = c->red;
        no.loss.ignore_index = c->ii;
        no.loss.grad_scale = c->G;
        no.loss.normalizer = c->D;
        no.loss.target_check = opt.loss.target_check;
        clxent_tensor lp = t_make(ctx, in->v[O_LSM], NULL, O, C, I,
                                  x_layout(c->xl, O, C, I), c->odt);
        clxent_tensor loss = loss_make(ctx, c);
        OK(ctx, clxent_nll_loss_nd(ctx, &lp, &y, &w, &no, &loss, NULL));
        r.v[O_NLL] = t_read(ctx, &loss, o_name[O_NLL], name);
        clxent_tensor g = t_make(ctx, NULL, NULL, O, C, I, ol, c->odt);
        OK(ctx, clxent_nll_loss_backward_nd(ctx, &lp, &y, &w, &no, &gr, &g,
                                            NULL));
        r.v[O_NLLG] = t_read(ctx, &g, o_name[O_NLLG], name);
        t_free(&lp);
        t_free(&loss);
        t_free(&g);
    }

    /* cross-entropy */
    clxent_tensor_targets tg;
    memset(&tg, 0, sizeof tg);
    tg.indices = no_tensor();
    tg.probs = no_tensor();
    if (c->probs)
        tg.probs = t_make(ctx, d->t, NULL, O, C, I,
                          x_layout(c->xl >= X_KINDS ? c->xl
                                                    : (c->xl + 1) % X_KINDS,
                                   O, C, I),
                          c->dt);
    else
        tg.indices = y;
    {
        clxent_tensor loss = loss_make(ctx, c);
        clxent_tensor lse =
            rows_make(ctx, NULL, NULL, O, I, (c->rl + 1) % R_KINDS,
                      CLXENT_F32);
        clxent_tensor z = c->zout ? loss_make(ctx, c) : no_tensor();
        OK(ctx, clxent_cross_entropy_forward_nd(ctx, &x, &tg, &w, &opt, &loss,
                                                &lse, &z, NULL));
        keep_trace(ctx, r.trace_fwd, sizeof r.trace_fwd);
        r.v[O_FL] = t_read(ctx, &loss, o_name[O_FL], name);
        r.v[O_FLSE] = t_read(ctx, &lse, o_name[O_FLSE], name);
        if (c->zout) r.v[O_FZ] = t_read(ctx, &z, o_name[O_FZ], name);
        t_free(&loss);
        t_free(&lse);
        t_free(&z);
    }
    {
        clxent_tensor lse =
            rows_make(ctx, in->v[O_FLSE], NULL, O, I,
                      c->yl >= 0 ? c->yl : c->rl, CLXENT_F32);
        clxent_tensor g = t_make(ctx, NULL, NULL, O, C, I, ol, c->dt);
        OK(ctx, clxent_cross_entropy_backward_nd(ctx, &x, &tg, &w, &opt, &lse,
                                                 &gr, &g, NULL));
        keep_trace(ctx, r.trace_bwd, sizeof r.trace_bwd);
        r.v[O_BG] = t_read(ctx, &g, o_name[O_BG], name);
        t_free(&lse);
        t_free(&g);
    }
    {
        clxent_tensor loss = loss_make(ctx, c);
        clxent_tensor lse = rows_make(ctx, NULL, NULL, O, I, c->rl,
                                      CLXENT_F32);
        clxent_tensor z = c->zout ? loss_make(ctx, c) : no_tensor();
        clxent_tensor g = t_make(ctx, NULL, NULL, O, C, I, ol, c->dt);
        OK(ctx, clxent_cross_entropy_nd(ctx, &x, &tg, &w, &opt, &gr, &loss,
                                        &lse, &z, &g, NULL));
        keep_trace(ctx, r.trace_fused, sizeof r.trace_fused);
        r.v[O_UL] = t_read(ctx, &loss, o_name[O_UL], name);
        r.v[O_ULSE] = t_read(ctx, &lse, o_name[O_ULSE], name);
        if (c->zout) r.v[O_UZ] = t_read(ctx, &z, o_name[O_UZ], name);
        r.v[O_UG] = t_read(ctx, &g, o_name[O_UG], name);
        t_free(&loss);
        t_free(&lse);
        t_free(&z);
        t_free(&g);
    }
    if (c->in_place) { /* the gradient over the logits */
        clxent_options ip = opt;
        ip.loss.in_place = 1;
        clxent_tensor loss = loss_make(ctx, c);
        OK(ctx, clxent_cross_entropy_nd(ctx, &x, &tg, &w, &ip, &gr, &loss,
                                        NULL, NULL, &x, NULL));
        r.v[O_IPG] = t_read(ctx, &x, o_name[O_IPG], name);
        r.v[O_IPL] = t_read(ctx, &loss, o_name[O_IPL], name);
        t_free(&loss);
    }
    OK(ctx, clxent_finish(ctx));
    t_free(&x);
    t_free(&y);
    t_free(&gr);
    t_free(&tg.probs);
    clxent_buffer_release(w.buffer);
    return r;
}

/* The device's x' = transform(x) is f32: its rounding, a few ulps of
 * |x'|, is the one error the transforms add to every logit (0 without). */
static double xf_tol(const nd_case *c) {
    if (c->cap == 0.0f && c->scale == 1.0f) return 0.0;
    double bound = c->cap > 0.0f ? fmin((double)c->cap, c->scale * c->xr)
                                 : c->scale * c->xr;
    return 4.0 * 0x1p-24 * bound;
}

static void compare_losses(const float *got, const float *want, size_t n,
                           double extra, const char *what,
                           const char *name) {
    for (size_t k = 0; k < n; ++k)
        hx_compare(&got[k], &want[k], 1,
                   1.2e-6 * fmax(1.0, fabs(want[k])) + extra, 0.0,
                   CLXENT_F32, what, name);
}

void compare_case(const nd_case *c, const nd_res *dev, const nd_res *ref,
                  const char *name) {
    size_t R = n_rows(c), N = n_elems(c);
    size_t nl = c->red == CLXENT_REDUCTION_NONE ? R : 1;
    double xt = xf_tol(c), gs = fmax(1.0, (double)c->scale);
    hx_compare(dev->v[O_MAX], ref->v[O_MAX], R, 0.0, 0.0, CLXENT_F32,
               o_name[O_MAX], name);
    hx_compare(dev->v[O_SUM], ref->v[O_SUM], R, 0.0, 1.2e-6, CLXENT_F32,
               o_name[O_SUM], name);
    hx_compare(dev->v[O_LSM], ref->v[O_LSM], N, 1e-6 + xt, 4.8e-7, c->odt,
               o_name[O_LSM], name);
    hx_compare(dev->v[O_SM], ref->v[O_SM], N, 1e-6 + xt, 0.0, c->odt,
               o_name[O_SM], name);
    hx_compare(dev->v[O_COPY], ref->v[O_COPY], N, 0.0, 0.0, CLXENT_F32,
               o_name[O_COPY], name);
    hx_compare(dev->v[O_NLL], ref->v[O_NLL], nl, 1e-6, 1e-6, CLXENT_F32,
               o_name[O_NLL], name);
    hx_compare(dev->v[O_NLLG], ref->v[O_NLLG], N, 1e-7, 1e-6, c->odt,
               o_name[O_NLLG], name);
    compare_losses(dev->v[O_FL], ref->v[O_FL], nl, xt, o_name[O_FL], name);
    hx_compare(dev->v[O_FLSE], ref->v[O_FLSE], R, 1e-6 + xt, 1.2e-6,
               CLXENT_F32, o_name[O_FLSE], name);
    compare_losses(dev->v[O_UL], ref->v[O_UL], nl, xt, o_name[O_UL], name);
    hx_compare(dev->v[O_ULSE], ref->v[O_ULSE], R, 1e-6 + xt, 1.2e-6,
               CLXENT_F32, o_name[O_ULSE], name);
    if (c->zout) {
        compare_losses(dev->v[O_FZ], ref->v[O_FZ], nl, 0.0, o_name[O_FZ],
                       name);
        compare_losses(dev->v[O_UZ], ref->v[O_UZ], nl, 0.0, o_name[O_UZ],
                       name);
    }
    hx_compare(dev->v[O_BG], ref->v[O_BG], N, (1.2e-6 + xt) * gs, 0.0, c->dt,
               o_name[O_BG], name);
    hx_compare(dev->v[O_UG], ref->v[O_UG], N, (1.2e-6 + xt) * gs, 0.0, c->dt,
               o_name[O_UG], name);
    if (c->in_place) {
        hx_compare(dev->v[O_IPG], ref->v[O_IPG], N, (1.2e-6 + xt) * gs, 0.0,
                   c->dt, o_name[O_IPG], name);
        compare_losses(dev->v[O_IPL], ref->v[O_IPL], nl, xt, o_name[O_IPL],
                       name);
    }
}

/* ---- shapes ---- */

nd_case shape_case(shape sh) {
    nd_case c;
    memset(&c, 0, sizeof c);
    c.O = sh.O;
    c.C = sh.C;
    c.I = sh.I;
    c.dt = c.odt = CLXENT_F32;
    c.idt = CLXENT_I32;
    c.yl = -1;
    c.ii = -100;
    c.G = 1.0f;
    c.scale = 1.0f;
    c.xr = 6.0f;
    return c;
}

int quick(void) {
    const char *v = getenv("CLXENT_ND_QUICK");
    return v && strcmp(v, "1") == 0;
}

void nd_print_device(clxent_context *dev, const char *what) {
    clxent_device_info info;
    OK(dev, clxent_context_info(dev, &info));
    print_message("%s on %s (%s)\n", what, info.name, info.platform);
}
