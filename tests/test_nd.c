/* The tensor calls (clxent.h, "Tensors with the class axis anywhere") on
 * the OpenCL device against the host reference on the same inputs: every
 * _nd operation over a grid of (outer, classes, inner) shapes, strided,
 * offset, transposed and permuted layouts of the logits and outputs,
 * strided and transposed per-row arrays, and the options (targets, weights,
 * ignore_index, smoothing, z-loss with z_loss_out, softcap, logit_scale,
 * reductions, grad_rows, in place). Every output's bytes outside its
 * elements must be left alone. Then: the prefetches of the CPU mapping
 * change no bit; the matrix calls and the _nd calls of inner 1 give the
 * same bits; a bad label names its PyTorch position.
 *
 * CLXENT_ND_QUICK=1 runs a few small shapes only (the Oclgrind pass of
 * tools/ci_hardening.sh). */
#include "contract.h" /* CLX_ND_BLOCK */
#include "ops_harness.h"

/* ---- layouts ---- */

typedef struct lay {
    size_t off, so, sc, si; /* element offset, outer/class/inner strides */
} lay;

/* Logits, probabilities and the matrix outputs. */
enum {
    X_CONTIG,    /* PyTorch's contiguous (N, C, d...) */
    X_PADDED,    /* every stride padded, an offset */
    X_CLAST,     /* channels-last: class stride 1, inner stride C */
    X_CLAST_PAD, /* channels-last with padded inner and outer strides */
    X_PERM,      /* (d, C, N) memory order: outer stride 1 */
    X_COUT,      /* (C, N, d) memory order: the class axis outermost */
    X_KINDS,
    /* inputs only: the inner stride 0 (every position reads one row) */
    X_BCAST_CL = X_KINDS, /* class stride 1 */
    X_BCAST_ND            /* class stride 2 */
};
static const char *x_kind_name[X_KINDS + 2] = {
    "contig", "padded", "clast", "clast-pad", "perm", "cout", "bcast-cl",
    "bcast-nd"};

static lay x_layout(int k, size_t O, size_t C, size_t I) {
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

/* Per-row arrays (targets, loss, lse, z-loss, grad_rows, row statistics):
 * classes 1, their class stride unused (0 or 7 here). */
enum { R_COMPACT, R_STRIDED, R_TRANS, R_KINDS, R_BCAST = R_KINDS };
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

/* A tensor of O x C x I in layout L holding vals (canonical order
 * [o][c][i], f32 converted to dt) or ivals (I32/I64), or nothing (the
 * 0x7f fill everywhere). */
static clxent_tensor t_make(clxent_context *ctx, const float *vals,
                            const int64_t *ivals, size_t O, size_t C,
                            size_t I, lay L, clxent_dtype dt) {
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

static clxent_tensor rows_make(clxent_context *ctx, const float *vals,
                               const int64_t *ivals, size_t O, size_t I,
                               int kind, clxent_dtype dt) {
    return t_make(ctx, vals, ivals, O, 1, I, r_layout(kind, O, I), dt);
}

/* A 1 x 1 x 1 tensor (a reduced loss) at offset 1. */
static clxent_tensor scalar_make(clxent_context *ctx) {
    return t_make(ctx, NULL, NULL, 1, 1, 1, (lay){1, 1, 1, 1}, CLXENT_F32);
}

static clxent_tensor no_tensor(void) {
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

static void t_free(clxent_tensor *t) {
    clxent_buffer_release(t->buffer);
    t->buffer = NULL;
}

/* ---- one case ---- */

typedef struct nd_case {
    size_t O, C, I;
    clxent_dtype dt;  /* logits, probabilities, gradient */
    clxent_dtype odt; /* log_softmax, softmax, copy out; NLL's logp */
    clxent_dtype idt; /* class indices */
    int xl, ol, rl;   /* layouts: logits, outputs, per-row arrays */
    int yl;           /* per-row inputs' layout, -1: rl and its shifts */
    int probs, weights, ignore, grad_rows, zout, in_place, deferred;
    int64_t ii;
    float eps, zeta, cap, scale, G, D;
    clxent_reduction red;
    float xr; /* logits in (-xr, xr) */
    uint64_t seed;
} nd_case;

typedef struct nd_data {
    float *x, *t, *w, *gr;
    int64_t *y;
} nd_data;

static size_t n_rows(const nd_case *c) { return c->O * c->I; }
static size_t n_elems(const nd_case *c) { return c->O * c->C * c->I; }

static nd_data nd_make(const nd_case *c) {
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

static void nd_free(nd_data *d) {
    free(d->x);
    free(d->t);
    free(d->w);
    free(d->gr);
    free(d->y);
}

static void nd_name(const nd_case *c, char *buf, size_t size) {
    snprintf(buf, size,
             "(%zu, %zu, %zu) %s->%s x:%s out:%s rows:%s in-rows:%s %s%s%s%s%s%s%s "
             "red=%d "
             "ii=%lld eps=%g z=%g cap=%g scale=%g G=%g D=%g seed=%llu",
             c->O, c->C, c->I, clxent_dtype_name(c->dt),
             clxent_dtype_name(c->odt), x_kind_name[c->xl],
             x_kind_name[c->ol], r_kind_name[c->rl],
             c->yl >= 0 ? r_kind_name[c->yl] : "shifted", c->probs ? "probs" : clxent_dtype_name(c->idt),
             c->weights ? " w" : "", c->ignore ? " ign" : "",
             c->grad_rows ? " gr" : "", c->zout ? " zout" : "",
             c->in_place ? " inplace" : "",
             c->deferred ? " deferred" : "", (int)c->red, (long long)c->ii,
             (double)c->eps, (double)c->zeta, (double)c->cap,
             (double)c->scale, (double)c->G, (double)c->D,
             (unsigned long long)c->seed);
}

/* Every output of the case, canonical f32. */
enum {
    O_MAX, O_SUM, O_LSM, O_SM, O_COPY, O_NLL, O_NLLG, O_FL, O_FLSE, O_FZ,
    O_BG, O_UL, O_ULSE, O_UZ, O_UG, O_IPG, O_COUNT
};
static const char *o_name[O_COUNT] = {
    "row_max_nd",          "row_expsum_nd",       "log_softmax_nd",
    "softmax_nd",          "copy_nd",             "nll_loss_nd",
    "nll_loss_backward_nd", "forward_nd loss",    "forward_nd lse",
    "forward_nd z_loss_out", "backward_nd grad",  "cross_entropy_nd loss",
    "cross_entropy_nd lse", "cross_entropy_nd z_loss_out",
    "cross_entropy_nd grad", "cross_entropy_nd grad in place"};

typedef struct nd_res {
    float *v[O_COUNT];
    /* the rows forward, fused, backward and softmax took */
    char trace_fwd[256], trace_fused[256], trace_bwd[256], trace_sm[256];
} nd_res;

static void keep_trace(const clxent_context *ctx, char *to, size_t size) {
    const char *t = clxent_context_last_trace(ctx);
    snprintf(to, size, "%s", t ? t : "");
}

static void res_free(nd_res *r) {
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

#define OK(ctx, call) fx_assert_status((ctx), (call), CLXENT_STATUS_OK)

/* Runs every operation of the case on ctx. The inputs that come from an
 * earlier operation (the exp-sum's row max, NLL's log-probabilities,
 * backward's lse) are the host's (ref), or ctx's own when ref is NULL
 * (the host run itself), so both backends compute the same function. */
static nd_res run_all(clxent_context *ctx, const nd_case *c,
                      const nd_data *d, const nd_res *ref,
                      const char *name) {
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

static void compare_case(const nd_case *c, const nd_res *dev,
                         const nd_res *ref, const char *name) {
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
    if (c->in_place)
        hx_compare(dev->v[O_IPG], ref->v[O_IPG], N, (1.2e-6 + xt) * gs, 0.0,
                   c->dt, o_name[O_IPG], name);
}

/* The case on the device against the host; traces (if not NULL) gets
 * the rows the operations took (no outputs), and name the case's name. */
static void run_case_traced(clxent_context *dev, const nd_case *c,
                            nd_res *traces, char *name, size_t size) {
    nd_name(c, name, size);
    nd_data d = nd_make(c);
    nd_res ref = run_all(fx_host(), c, &d, NULL, name);
    nd_res got = run_all(dev, c, &d, &ref, name);
    compare_case(c, &got, &ref, name);
    res_free(&ref);
    res_free(&got);
    if (traces) *traces = got; /* the traces, no outputs */
    nd_free(&d);
}

static void run_case(clxent_context *dev, const nd_case *c) {
    char name[384];
    run_case_traced(dev, c, NULL, name, sizeof name);
}

/* ---- the grid ---- */

typedef struct shape {
    size_t O, C, I;
} shape;

/* A case of shape sh with every option off (f32, int32 labels,
 * ignore_index -100, G 1, scale 1, logits in [-6, 6]): the tests set
 * what they vary. */
static nd_case shape_case(shape sh) {
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

/* inner 1, 2, 3, 17 and 4096; C 1, small, at the VEC and block edges
 * (8, 16, 17), around nd_cached_cmax (128, 129) and the CPU thresholds
 * of the 2-D kernels, and large with few rows. */
static const shape grid[] = {
    {3, 5, 1},    {2, 7, 2},     {4, 3, 3},    {2, 10, 17},  {1, 3, 4096},
    {2, 1, 17},   {1, 1, 1},     {3, 8, 16},   {2, 17, 33},  {2, 16, 5},
    {2, 100, 17}, {2, 128, 5},   {2, 129, 3},  {1, 300, 5},  {3, 33, 64},
    {1, 1000, 2}, {1, 5000, 3},  {1, 40000, 2}, {5, 2, 1000}, {2, 64, 1},
    {1, 257, 1},  {2, 4, 2048},  {0, 5, 3},    {2, 6, 1}};
static const shape quick_grid[] = {{2, 5, 3}, {1, 3, 17}, {2, 9, 2},
                                   {1, 130, 2}, {2, 4, 1}};

/* Option combination k: periods 2..7 so that they mix. */
static void combo(size_t k, nd_case *c) {
    c->dt = (clxent_dtype)(CLXENT_F32 + k % 3);
    c->odt = (clxent_dtype)(CLXENT_F32 + (k / 3 + k) % 3);
    c->idt = k % 2 ? CLXENT_I64 : CLXENT_I32;
    c->xl = (int)(k % X_KINDS);
    c->ol = (int)((k / 2 + 3) % X_KINDS);
    c->rl = (int)(k % R_KINDS);
    c->probs = k % 4 == 3;
    c->weights = k % 2 == 0;
    c->ignore = !c->probs && k % 3 != 1;
    c->ii = (k % 5 == 2) ? (int64_t)(c->C / 2) : -100;
    c->eps = k % 3 == 2 ? 0.1f : 0.0f;
    c->zeta = k % 2 ? 1e-3f : 0.0f;
    c->zout = k % 4 != 1;
    c->red = (clxent_reduction)((k / 2) % 3);
    c->grad_rows = c->red == CLXENT_REDUCTION_NONE && k % 5 != 0;
    c->cap = k % 5 == 1 ? 5.0f : k % 5 == 3 ? 20.0f : 0.0f;
    c->scale = k % 7 == 2 ? 0.75f : k % 7 == 5 ? 1.5f : 1.0f;
    c->G = k % 6 == 4 ? 0.5f : 1.0f;
    c->D = c->red == CLXENT_REDUCTION_MEAN && k % 7 == 3 ? 3.5f : 0.0f;
    c->in_place = k % 4 == 0;
    c->deferred = k % 4 == 2;
    c->yl = -1;
    c->xr = c->cap > 0.0f ? 12.0f : 6.0f;
}

static int quick(void) {
    const char *v = getenv("CLXENT_ND_QUICK");
    return v && strcmp(v, "1") == 0;
}

static void test_grid(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    clxent_device_info info;
    OK(dev, clxent_context_info(dev, &info));
    print_message("test_nd grid on %s (%s)\n", info.name, info.platform);
    const shape *g = quick() ? quick_grid : grid;
    size_t n = quick() ? sizeof quick_grid / sizeof *quick_grid
                       : sizeof grid / sizeof *grid;
    size_t reps = quick() ? 2 : 3, k = 0;
    for (size_t s = 0; s < n; ++s) {
        size_t elems = g[s].O * g[s].C * g[s].I;
        size_t r = elems > 50000 ? 1 : reps;
        for (size_t j = 0; j < r; ++j, ++k) {
            nd_case c = shape_case(g[s]);
            combo(k, &c);
            c.seed = 4000 + k;
            run_case(dev, &c);
        }
    }
}

/* The options one at a time on a middle shape, each layout pair: a
 * failure in the grid above names many options at once. */
static void test_options_one_by_one(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev || quick()) return;
    for (int v = 0; v < 12; ++v) {
        nd_case c;
        memset(&c, 0, sizeof c);
        c.O = 2;
        c.C = 37;
        c.I = 19;
        c.dt = c.odt = CLXENT_F32;
        c.idt = CLXENT_I32;
        c.xl = v % X_KINDS;
        c.ol = (v + 1) % X_KINDS;
        c.rl = v % R_KINDS;
        c.ii = -100;
        c.yl = -1;
        c.G = 1.0f;
        c.scale = 1.0f;
        c.xr = 6.0f;
        c.red = CLXENT_REDUCTION_NONE;
        c.seed = 9000 + (uint64_t)v;
        switch (v) {
        case 1: c.weights = 1; break;
        case 2: c.ignore = 1; break;
        case 3: c.eps = 0.2f; break;
        case 4: c.zeta = 1e-2f; c.zout = 1; break;
        case 5: c.cap = 4.0f; c.xr = 10.0f; break;
        case 6: c.scale = 0.5f; break;
        case 7: c.probs = 1; break;
        case 8: c.red = CLXENT_REDUCTION_SUM; break;
        case 9: c.red = CLXENT_REDUCTION_MEAN; break;
        case 10: c.grad_rows = 1; break;
        case 11: c.idt = CLXENT_I64; c.in_place = 1; break;
        }
        run_case(dev, &c);
    }
}

/* Long rows in f32 with class indices (the CPU's chunked fused kernel,
 * and the kept rows where a tuning entry takes them past 1024 classes)
 * against the host with a tolerance relative to each gradient value: the
 * grid's absolute bound (1.2e-6) is larger than a whole gradient of 1e-5
 * there, and would not see a wrong chunk factor. */
static void rel_compare(const float *got, const float *want, size_t n,
                        const char *what, const char *name) {
    double top = 0;
    for (size_t i = 0; i < n; ++i) top = fmax(top, fabs(want[i]));
    for (size_t i = 0; i < n; ++i)
        if (!(fabs(got[i] - want[i]) <=
              8e-6 * fabs(want[i]) + 1e-7 * top / (double)n))
            fail_msg("%s: %s[%zu] = %.9g, reference %.9g (relative %.3g)",
                     name, what, i, got[i], want[i],
                     fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-30));
}

static void test_long_rows(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev || quick()) return;
    static const shape sh[] = {{1, 40000, 2}, {2, 3000, 17}, {1, 1025, 16},
                               {3, 5000, 1}};
    long long kcmax = 0;
    OK(dev, clxent_context_get_param(dev, "nd_kept_cmax", &kcmax));
    /* k 1: the kept rows off, for the shapes they took at k 0 */
    for (int k = 0; k < 2; ++k) {
        OK(dev, clxent_context_set_param(dev, "nd_kept_cmax", k ? 0 : kcmax));
        for (size_t s = 0; s < sizeof sh / sizeof *sh; ++s)
            for (int v = 0; v < 3 && (k == 0 || (long long)sh[s].C <= kcmax);
                 ++v) {
                nd_case c = shape_case(sh[s]);
                c.idt = v == 1 ? CLXENT_I64 : CLXENT_I32;
                c.xl = v == 2 ? 1 : X_CONTIG;
                c.ol = X_CONTIG;
                c.rl = R_COMPACT;
                c.weights = v == 1;
                c.ignore = v == 2;
                c.zeta = v == 2 ? 1e-3f : 0.0f;
                c.red = v == 0 ? CLXENT_REDUCTION_SUM : CLXENT_REDUCTION_NONE;
                c.seed = 7000 + 3 * s + (uint64_t)v;
                char name[384];
                nd_name(&c, name, sizeof name);
                nd_data d = nd_make(&c);
                nd_res ref = run_all(fx_host(), &c, &d, NULL, name);
                nd_res got = run_all(dev, &c, &d, &ref, name);
                compare_case(&c, &got, &ref, name);
                size_t N = n_elems(&c);
                rel_compare(got.v[O_UG], ref.v[O_UG], N, o_name[O_UG], name);
                rel_compare(got.v[O_BG], ref.v[O_BG], N, o_name[O_BG], name);
                res_free(&ref);
                res_free(&got);
                nd_free(&d);
            }
    }
    OK(dev, clxent_context_set_param(dev, "nd_kept_cmax", kcmax));
}

/* Inputs that repeat elements (stride 0, allowed for inputs): logits
 * and probabilities the same at every inner position, one target, lse,
 * row max and grad_rows per outer index. */
static void test_broadcast_inputs(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const shape sh[] = {{1, 6, 5}, {3, 6, 5}, {2, 200, 3}, {2, 40, 19}};
    size_t ns = quick() ? 2 : sizeof sh / sizeof *sh;
    for (size_t s = 0; s < ns; ++s)
        for (int v = 0; v < 2; ++v) {
            nd_case c = shape_case(sh[s]);
            combo(2 * s + (size_t)v, &c);
            c.xl = v ? X_BCAST_ND : X_BCAST_CL;
            c.yl = R_BCAST;
            c.in_place = 0; /* the logits repeat: no gradient over them */
            c.seed = 5000 + 2 * s + (size_t)v;
            run_case(dev, &c);
        }
}

/* One case with those rows (O >= 2, I >= 5): a NaN row (0, ., 1), an
 * ignored NaN row (1, ., 2), masked classes (0, ., 3), a +inf row
 * (1, ., 4), one finite class (1, ., 0); against the host, and the exact
 * zeros of the ignored row. tiny: the masked row's loss must be inf. */
static void ieee_case(clxent_context *dev, nd_case *c, int tiny) {
    char name[384];
    nd_name(c, name, sizeof name);
    nd_data d = nd_make(c);
    size_t C = c->C, I = c->I;
#define X_(o, j, i) d.x[((o) * C + (j)) * I + (i)]
    X_(0, 3, 1) = NAN;           /* a NaN row */
    X_(1, 2, 2) = NAN;           /* a NaN row, ignored */
    d.y[1 * I + 2] = -100;
    for (size_t j = 0; j < C; j += 3) {
        X_(0, j, 3) = -INFINITY;
        if (d.t) d.t[(0 * C + j) * I + 3] = 0.0f;
    }
    d.y[0 * I + 3] = 1;          /* masked classes, target unmasked */
    X_(1, 4, 4) = INFINITY;      /* +inf: a NaN row */
    for (size_t j = 1; j < C; ++j) X_(1, j, 0) = -INFINITY;
    d.y[1 * I + 0] = 0;          /* one finite class */
    /* masked leading classes, two blocks of the online passes (a block
     * of -inf alone must add nothing, not exp(-inf - -inf)) */
    for (size_t j = 0; j + 1 < C && j < 2 * CLX_ND_BLOCK; ++j)
        X_(1, j, 1) = -INFINITY;
    d.y[1 * I + 1] = (int64_t)(C - 1);
    if (d.t)
        for (size_t j = 0; j + 1 < C && j < 2 * CLX_ND_BLOCK; ++j)
            d.t[(1 * C + j) * I + 1] = 0.0f;
#undef X_
    nd_res ref = run_all(fx_host(), c, &d, NULL, name);
    nd_res got = run_all(dev, c, &d, &ref, name);
    compare_case(c, &got, &ref, name);
    if (tiny && got.v[O_UL][0 * I + 3] != INFINITY)
        fail_msg("%s: masked row: loss %g, want inf", name,
                 (double)got.v[O_UL][0 * I + 3]);
    for (size_t j = 0; !c->probs && j < C; ++j)
        if (got.v[O_UG][(1 * C + j) * I + 2] != 0.0f)
            fail_msg("%s: ignored NaN row: grad[%zu] = %g, want 0", name, j,
                     (double)got.v[O_UG][(1 * C + j) * I + 2]);
    if (!c->probs && got.v[O_UL][1 * I + 2] != 0.0f)
        fail_msg("%s: ignored NaN row: loss %g, want 0", name,
                 (double)got.v[O_UL][1 * I + 2]);
    res_free(&ref);
    res_free(&got);
    nd_free(&d);
}

/* NaN, +inf and masked (-inf) logits, and an ignored NaN row, in a
 * strided layout: row by row as the reference; the ignored row gives an
 * exact 0 loss and gradient. Variants 4 to 7: smoothing and z-loss of f32
 * denormals (eps/C rounds to 0 in f32), class indices and probabilities
 * (no mass on the masked classes): the masked row's loss is inf, as the
 * reference's, not 0*inf = NaN. */
static void test_ieee(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    for (int v = 0; v < (quick() ? 2 : 8); ++v) {
        int tiny = v >= 4;
        nd_case c = shape_case((shape){2, v < 2 || v == 4 || v == 5 ? 9 : 150,
                                       5});
        c.dt = c.odt = (clxent_dtype)(CLXENT_F32 + v % 3);
        c.xl = v % 2 ? X_PADDED : X_CLAST_PAD;
        c.ol = X_CONTIG;
        c.rl = R_STRIDED;
        c.eps = tiny ? 0x1p-149f : v % 2 ? 0.1f : 0.0f;
        c.zeta = tiny ? 4.08955e-41f : 1e-3f;
        c.probs = tiny && v % 2;
        c.zout = 1;
        c.cap = v == 3 ? 8.0f : 0.0f;
        c.red = CLXENT_REDUCTION_NONE;
        c.seed = 6000 + (uint64_t)v;
        ieee_case(dev, &c, tiny);
    }
}

/* f32 fused with the exps kept in the gradient (nd_kept_fused on CPUs):
 * its plain body (whole vectors of unit inner stride, class indices, no
 * smoothing), its general body on whole vectors (smoothing, probabilities
 * whose inner stride is 1) and on tails, and NaN, +inf and masked logits
 * in the plain body, whose maximum is fmax. Inner 64 and 32 are whole
 * items of 4 and 2 vectors of 16; 72 ends in a tail of half a vector. */
static void test_kept_paths(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const shape sh[] = {{2, 21, 64}, {1, 5, 72}, {3, 150, 32},
                               {1, 1024, 16}};
    size_t ns = quick() ? 2 : sizeof sh / sizeof *sh;
    for (size_t s = 0; s < ns; ++s)
        for (int v = 0; v < 9; ++v) {
            nd_case c = shape_case(sh[s]);
            c.idt = v % 2 ? CLXENT_I64 : CLXENT_I32;
            /* cout: inner stride 1, and the probabilities (the next
             * layout) contiguous */
            c.xl = v == 1 || v == 5 ? X_COUT : X_CONTIG;
            c.ol = X_CONTIG;
            c.rl = R_COMPACT;
            if (v == 7) c.ii = (int64_t)(c.C / 2);
            c.weights = v == 1 || v == 4;
            c.ignore = v == 1 || v == 7;
            c.zeta = v == 2 ? 1e-3f : 0.0f;
            c.zout = v == 2;
            c.grad_rows = v == 3;
            c.eps = v == 4 ? 0.1f : 0.0f;
            c.probs = v == 5 || v == 6;
            c.in_place = v == 7;
            c.red = v == 0 || v == 5   ? CLXENT_REDUCTION_SUM
                    : v == 2 || v == 4 ? CLXENT_REDUCTION_MEAN
                                       : CLXENT_REDUCTION_NONE;
            if (v == 3) c.G = 0.5f;
            c.seed = 8000 + 9 * s + (uint64_t)v;
            if (v < 8)
                run_case(dev, &c);
            else if (c.O >= 2) /* the plain body's IEEE rows */
                ieee_case(dev, &c, 0);
        }
}

/* The kept rows' items: the unroll whose whole items cover the most
 * inner positions (at VEC 16 and nd_unroll 4: inner 40 and 100 in items
 * of 2 vectors, 48 of 1, 200 of 4), in fused, backward and softmax, and
 * fused inner extents below nd_kept_imin to nd_cached; the results
 * against the host's either way. */
static void test_kept_items(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    long long imin = 0, vec = 0, unroll = 0, kcmax = 0, wcmin = 0;
    OK(dev, clxent_context_get_param(dev, "nd_kept_imin", &imin));
    OK(dev, clxent_context_get_param(dev, "vec", &vec));
    OK(dev, clxent_context_get_param(dev, "nd_unroll", &unroll));
    OK(dev, clxent_context_get_param(dev, "nd_kept_cmax", &kcmax));
    OK(dev, clxent_context_get_param(dev, "nd_wide_cmin", &wcmin));
    static const struct {
        size_t I;
        long long imin;
        const char *fused; /* the fused row */
        unsigned ndu;      /* the kept rows' unroll */
    } k[] = {{8, 0, "(nd_kept ", 1},  {8, 16, "(nd_cached ", 1},
             {40, 0, "(nd_kept ", 2}, {48, 16, "(nd_kept ", 1},
             {100, 16, "(nd_kept ", 2}, {200, 0, "(nd_kept ", 4}};
    int check = vec == 16 && unroll == 4 && kcmax >= 21 && wcmin >= 21;
    for (size_t i = 0; i < sizeof k / sizeof *k; ++i) {
        OK(dev, clxent_context_set_param(dev, "nd_kept_imin", k[i].imin));
        nd_case c = shape_case((shape){2, 21, k[i].I});
        c.xl = X_CONTIG;
        c.ol = X_CONTIG;
        c.rl = R_COMPACT;
        c.red = CLXENT_REDUCTION_NONE;
        c.seed = 8100 + (uint64_t)i;
        char name[384], ndu[16];
        nd_res t;
        run_case_traced(dev, &c, &t, name, sizeof name);
        snprintf(ndu, sizeof ndu, " NDU=%u)", k[i].ndu);
        const char *want[3] = {k[i].fused, "(nd_kept ", "(nd_kept "};
        const char *got[3] = {t.trace_fused, t.trace_bwd, t.trace_sm};
        for (int op = 0; check && op < 3; ++op) {
            const char *at = strstr(got[op], want[op]);
            int kept = strcmp(want[op], "(nd_kept ") == 0;
            if (!at || (kept && !strstr(at, ndu)))
                fail_msg("%s: took %s, want %s NDU %u", name, got[op],
                         want[op], k[i].ndu);
        }
    }
    OK(dev, clxent_context_set_param(dev, "nd_kept_imin", imin));
}

/* Long rows on CPUs with an online max and sum (the nd_wide rows, forced
 * here at any C and inner extent, the kept rows off): whole items of 16
 * and of fewer vectors, tails (nd_fused's body per vector), C below one
 * block of classes,
 * 16-bit storage, and NaN, +inf and masked logits; long rows' gradients
 * also relative to each value, as for the chunked rows. The natural choice is
 * checked on a shape past nd_wide_cmin whose items fill nd_wide_unroll
 * vectors, also with nd_kept_cmax past its C (the wide rows come first). */
static void test_wide_rows(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    long long mode = 0, vec = 0, kcmax = 0, wcmin = 0, w16cmin = 0;
    long long unroll = 0;
    OK(dev, clxent_context_get_param(dev, "nd_wide", &mode));
    OK(dev, clxent_context_get_param(dev, "nd_wide_cmin", &wcmin));
    OK(dev, clxent_context_get_param(dev, "nd_wide16_cmin", &w16cmin));
    OK(dev, clxent_context_get_param(dev, "nd_unroll", &unroll));
    OK(dev, clxent_context_get_param(dev, "vec", &vec));
    OK(dev, clxent_context_get_param(dev, "nd_kept_cmax", &kcmax));
    /* items of 16, 8 (a tail) and 1 vectors: one program each (Intel's
     * compiler takes seconds for one) */
    static const shape sh[] = {{2, 21, 256}, {1, 5, 80}, {1, 1100, 272},
                               {2, 9, 16}};
    size_t ns = quick() ? 2 : sizeof sh / sizeof *sh;
    for (size_t s = 0; s < ns; ++s)
        for (int v = 0; v < 6; ++v) {
            int natural = s == 2 && (v < 2 || v == 4);
            OK(dev, clxent_context_set_param(dev, "nd_wide", natural ? mode
                                                                     : 2));
            /* v 1, natural: the kept rows' bound past C, which the wide
             * rows take first */
            OK(dev, clxent_context_set_param(
                        dev, "nd_kept_cmax",
                        !natural ? 0 : v == 1 ? (long long)sh[s].C : kcmax));
            nd_case c = shape_case(sh[s]);
            c.idt = v % 2 ? CLXENT_I64 : CLXENT_I32;
            c.xl = X_CONTIG;
            c.ol = X_CONTIG;
            c.rl = R_COMPACT;
            c.weights = v == 1 || v == 3;
            c.ignore = v == 1 || v == 4;
            c.zeta = v == 2 ? 1e-3f : 0.0f;
            c.zout = v == 2;
            c.grad_rows = v == 3;
            if (v == 3) c.G = 0.5f;
            if (v == 2) c.dt = c.odt = CLXENT_F16;
            if (v == 4) c.dt = c.odt = CLXENT_BF16;
            c.red = v == 0 ? CLXENT_REDUCTION_SUM
                    : v == 2 ? CLXENT_REDUCTION_MEAN
                             : CLXENT_REDUCTION_NONE;
            c.seed = 8200 + 6 * s + (uint64_t)v;
            if (v == 5 && c.O >= 2 && c.C >= 5 && c.I >= 5) {
                ieee_case(dev, &c, 0);
                continue;
            }
            char name[384];
            nd_name(&c, name, sizeof name);
            nd_data d = nd_make(&c);
            nd_res ref = run_all(fx_host(), &c, &d, NULL, name);
            nd_res got = run_all(dev, &c, &d, &ref, name);
            compare_case(&c, &got, &ref, name);
            size_t N = n_elems(&c);
            if (c.dt == CLXENT_F32 && c.C > 1000) /* tiny gradients */
                rel_compare(got.v[O_UG], ref.v[O_UG], N, o_name[O_UG], name);
            /* the CPU mapping takes the row in any storage (naturally:
             * wide items past nd_wide_cmin, fused 16-bit past
             * nd_wide16_cmin) */
            int wide = vec > 1 && mode != 0 &&
                       (!natural || (wcmin < (long long)c.C &&
                                     c.I > (size_t)(unroll * vec)));
            int wide16 = vec > 1 && mode != 0 &&
                         (!natural || (w16cmin < (long long)c.C &&
                                       c.I > (size_t)(unroll * vec)));
            if (wide && !strstr(got.trace_fwd, "(nd_wide "))
                fail_msg("%s: forward took %s, want nd_wide", name,
                         got.trace_fwd);
            if (wide && !strstr(got.trace_bwd, "(nd_wide "))
                fail_msg("%s: backward took %s, want nd_wide", name,
                         got.trace_bwd);
            if (wide && !strstr(got.trace_sm, "(nd_wide "))
                fail_msg("%s: softmax took %s, want nd_wide", name,
                         got.trace_sm);
            if ((c.dt == CLXENT_F32 ? wide : wide16) &&
                !strstr(got.trace_fused, "(nd_wide "))
                fail_msg("%s: fused took %s, want nd_wide", name,
                         got.trace_fused);
            res_free(&ref);
            res_free(&got);
            nd_free(&d);
        }
    OK(dev, clxent_context_set_param(dev, "nd_wide", mode));
    OK(dev, clxent_context_set_param(dev, "nd_kept_cmax", kcmax));
}

/* ---- the prefetches (nd_prefetch): the same bits without them ---- */

static size_t res_len(const nd_case *c, int k) {
    size_t nl = c->red == CLXENT_REDUCTION_NONE ? n_rows(c) : 1;
    switch (k) {
    case O_MAX: case O_SUM: case O_FLSE: case O_ULSE: return n_rows(c);
    case O_NLL: case O_FL: case O_FZ: case O_UL: case O_UZ: return nl;
    default: return n_elems(c);
    }
}

/* Shapes with several whole items per outer index, so that items
 * prefetch the next one's logits (the kept, cached and one-vector
 * kernels): every output bit for bit as with nd_prefetch 0, and right. */
static void test_prefetch_same_bits(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    long long pf = 0, vec = 0;
    OK(dev, clxent_context_get_param(dev, "nd_prefetch", &pf));
    OK(dev, clxent_context_get_param(dev, "vec", &vec));
    if (!pf || vec == 1) { /* GPUs have none; Oclgrind runs without */
        printf("test_prefetch_same_bits: this device does not prefetch\n");
        return;
    }
    static const shape sh[] = {{3, 21, 320}, {2, 150, 200}, {2, 21, 320},
                               {2, 21, 320}};
    for (size_t s = 0; s < sizeof sh / sizeof *sh; ++s) {
        nd_case c = shape_case(sh[s]);
        c.eps = s == 1 ? 0.1f : 0.0f; /* the kept kernel's general body */
        c.weights = s == 1;
        c.probs = s == 2;
        if (s == 3) c.dt = c.odt = CLXENT_BF16; /* nd_cached_fused */
        c.red = CLXENT_REDUCTION_MEAN;
        c.seed = 8100 + s;
        char name[384];
        nd_name(&c, name, sizeof name);
        nd_data d = nd_make(&c);
        nd_res ref = run_all(fx_host(), &c, &d, NULL, name);
        nd_res on = run_all(dev, &c, &d, &ref, name);
        OK(dev, clxent_context_set_param(dev, "nd_prefetch", 0));
        nd_res off = run_all(dev, &c, &d, &ref, name);
        OK(dev, clxent_context_set_param(dev, "nd_prefetch", pf));
        compare_case(&c, &on, &ref, name);
        for (int k = 0; k < O_COUNT; ++k) {
            if (!on.v[k] || !off.v[k]) continue;
            size_t n = res_len(&c, k);
            if (memcmp(on.v[k], off.v[k], n * sizeof(float)) != 0)
                fail_msg("%s: %s differs with and without the prefetches",
                         name, o_name[k]);
        }
        res_free(&ref);
        res_free(&on);
        res_free(&off);
        nd_free(&d);
    }
}

/* ---- the matrix calls against the _nd calls of inner 1, bit for bit ---- */

static unsigned char *raw(clxent_context *ctx, clxent_buffer *b) {
    return fx_download(ctx, b);
}

static void same_bytes(clxent_context *ctx, clxent_buffer *a,
                       clxent_buffer *b, const char *what,
                       const char *name) {
    size_t n = clxent_buffer_size(a);
    assert_int_equal(n, clxent_buffer_size(b));
    unsigned char *x = raw(ctx, a), *y = raw(ctx, b);
    for (size_t i = 0; i < n; ++i)
        if (x[i] != y[i])
            fail_msg("%s: %s: byte %zu differs between the matrix call "
                     "(0x%02x) and the _nd call (0x%02x)",
                     name, what, i, x[i], y[i]);
    free(x);
    free(y);
}

static clxent_tensor tv(const clxent_vector *v) {
    return v->buffer ? clxent_tensor_from_vector(v) : no_tensor();
}

static void bits_case(clxent_context *ctx, const hx_case *c) {
    char name[256];
    hx_name(c, name, sizeof name);
    hx_data d = hx_make(c);
    hx_in in = hx_upload(ctx, c, &d);
    size_t R = c->R, C = c->C, nl = hx_nloss(c);
    clxent_loss_options lo = hx_options(c);
    clxent_options no;
    clxent_options_init(&no);
    no.loss = lo;
    clxent_tensor x = clxent_tensor_from_matrix(&in.x);
    clxent_tensor_targets tt;
    tt.indices = tv(&in.tg.indices);
    tt.probs = in.tg.probs.buffer ? clxent_tensor_from_matrix(&in.tg.probs)
                                  : no_tensor();
    clxent_tensor gr = tv(&in.gr);
#define PAIR_V(n_, len) \
    clxent_vector n_##a = hx_vec(ctx, NULL, NULL, (len), 1, CLXENT_F32); \
    clxent_vector n_##b = hx_vec(ctx, NULL, NULL, (len), 1, CLXENT_F32); \
    clxent_tensor n_##t = clxent_tensor_from_vector(&n_##b)
#define PAIR_M(n_, dt) \
    clxent_matrix n_##a = hx_mat(ctx, NULL, R, C, HX_G_OFF, C + HX_G_PAD, dt); \
    clxent_matrix n_##b = hx_mat(ctx, NULL, R, C, HX_G_OFF, C + HX_G_PAD, dt); \
    clxent_tensor n_##t = clxent_tensor_from_matrix(&n_##b)
    PAIR_V(mx, R);
    OK(ctx, clxent_row_max(ctx, &in.x, &mxa, NULL));
    OK(ctx, clxent_row_max_nd(ctx, &x, &mxt, NULL));
    same_bytes(ctx, mxa.buffer, mxb.buffer, "row_max", name);
    PAIR_V(sm, R);
    clxent_tensor mxat = clxent_tensor_from_vector(&mxa);
    OK(ctx, clxent_row_expsum(ctx, &in.x, &mxa, &sma, NULL));
    OK(ctx, clxent_row_expsum_nd(ctx, &x, &mxat, &smt, NULL));
    same_bytes(ctx, sma.buffer, smb.buffer, "row_expsum", name);
    clxent_dtype odt = (clxent_dtype)(CLXENT_F32 + (c->dt + 1) % 3);
    PAIR_M(ls, odt);
    OK(ctx, clxent_log_softmax(ctx, &in.x, &lsa, NULL));
    OK(ctx, clxent_log_softmax_nd(ctx, &x, NULL, &lst, NULL));
    same_bytes(ctx, lsa.buffer, lsb.buffer, "log_softmax", name);
    PAIR_M(so, c->dt);
    OK(ctx, clxent_softmax(ctx, &in.x, &soa, NULL));
    OK(ctx, clxent_softmax_nd(ctx, &x, &no, &sot, NULL));
    same_bytes(ctx, soa.buffer, sob.buffer, "softmax", name);
    PAIR_M(cp, odt);
    OK(ctx, clxent_copy(ctx, &in.x, &cpa, NULL));
    OK(ctx, clxent_copy_nd(ctx, &x, &cpt, NULL));
    same_bytes(ctx, cpa.buffer, cpb.buffer, "copy", name);
    if (!c->probs && c->eps == 0.0f && c->zeta == 0.0f) {
        clxent_tensor lp = clxent_tensor_from_matrix(&lsa);
        clxent_tensor y = clxent_tensor_from_vector(&in.tg.indices);
        PAIR_V(nl_, nl);
        OK(ctx, clxent_nll_loss(ctx, &lsa, &in.tg.indices, &in.w, &lo,
                                &nl_a, NULL));
        OK(ctx, clxent_nll_loss_nd(ctx, &lp, &y, &in.w, &no, &nl_t, NULL));
        same_bytes(ctx, nl_a.buffer, nl_b.buffer, "nll_loss", name);
        PAIR_M(ng, odt);
        OK(ctx, clxent_nll_loss_backward(ctx, &lsa, &in.tg.indices, &in.w,
                                         &lo, &in.gr, &nga, NULL));
        OK(ctx, clxent_nll_loss_backward_nd(ctx, &lp, &y, &in.w, &no, &gr,
                                            &ngt, NULL));
        same_bytes(ctx, nga.buffer, ngb.buffer, "nll_loss_backward", name);
        clxent_buffer_release(nl_a.buffer);
        clxent_buffer_release(nl_b.buffer);
        clxent_buffer_release(nga.buffer);
        clxent_buffer_release(ngb.buffer);
    }
    PAIR_V(fl, nl);
    PAIR_V(fs, R);
    OK(ctx, clxent_cross_entropy_forward(ctx, &in.x, &in.tg, &in.w, &lo, &fla,
                                         &fsa, NULL));
    OK(ctx, clxent_cross_entropy_forward_nd(ctx, &x, &tt, &in.w, &no, &flt,
                                            &fst, NULL, NULL));
    same_bytes(ctx, fla.buffer, flb.buffer, "forward loss", name);
    same_bytes(ctx, fsa.buffer, fsb.buffer, "forward lse", name);
    PAIR_M(bg, c->dt);
    clxent_tensor fsat = clxent_tensor_from_vector(&fsa);
    OK(ctx, clxent_cross_entropy_backward(ctx, &in.x, &in.tg, &in.w, &lo,
                                          &fsa, &in.gr, &bga, NULL));
    OK(ctx, clxent_cross_entropy_backward_nd(ctx, &x, &tt, &in.w, &no, &fsat,
                                             &gr, &bgt, NULL));
    same_bytes(ctx, bga.buffer, bgb.buffer, "backward grad", name);
    PAIR_V(ul, nl);
    PAIR_V(us, R);
    PAIR_M(ug, c->dt);
    OK(ctx, clxent_cross_entropy(ctx, &in.x, &in.tg, &in.w, &lo, &in.gr, &ula,
                                 &usa, &uga, NULL));
    OK(ctx, clxent_cross_entropy_nd(ctx, &x, &tt, &in.w, &no, &gr, &ult, &ust,
                                    NULL, &ugt, NULL));
    same_bytes(ctx, ula.buffer, ulb.buffer, "fused loss", name);
    same_bytes(ctx, usa.buffer, usb.buffer, "fused lse", name);
    same_bytes(ctx, uga.buffer, ugb.buffer, "fused grad", name);
#undef PAIR_V
#undef PAIR_M
    clxent_buffer *bufs[] = {mxa.buffer, mxb.buffer, sma.buffer, smb.buffer,
                             lsa.buffer, lsb.buffer, soa.buffer, sob.buffer,
                             cpa.buffer, cpb.buffer, fla.buffer, flb.buffer,
                             fsa.buffer, fsb.buffer, bga.buffer, bgb.buffer,
                             ula.buffer, ulb.buffer, usa.buffer, usb.buffer,
                             uga.buffer, ugb.buffer};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i)
        clxent_buffer_release(bufs[i]);
    hx_in_release(&in);
    hx_free(&d);
}

static void matrix_vs_nd(clxent_context *ctx) {
    static const struct {
        size_t R, C;
    } shapes[] = {{7, 5}, {64, 33}, {33, 130}, {5, 1000}, {3, 5000},
                  {1, 40000}, {100, 1}, {17, 256}};
    size_t n = quick() ? 2 : sizeof shapes / sizeof *shapes;
    for (size_t s = 0; s < n; ++s)
        for (int v = 0; v < 3; ++v) {
            size_t k = 3 * s + (size_t)v;
            hx_case c = hx_base_case(shapes[s].R, shapes[s].C,
                                     (clxent_dtype)(CLXENT_F32 + k % 3),
                                     700 + k);
            c.idt = k % 2 ? CLXENT_I64 : CLXENT_I32;
            c.probs = v == 2;
            c.weights = k % 2 == 0;
            c.ignore = !c.probs && v == 0;
            c.eps = v == 1 ? 0.1f : 0.0f;
            c.zeta = k % 3 == 1 ? 1e-3f : 0.0f;
            c.red = (clxent_reduction)(k % 3);
            c.grad_rows = c.red == CLXENT_REDUCTION_NONE;
            bits_case(ctx, &c);
        }
}

static void test_matrix_vs_nd_device(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    matrix_vs_nd(dev);
}

static void test_matrix_vs_nd_host(void **state) {
    (void)state;
    matrix_vs_nd(fx_host());
}

/* ---- a bad label names its position as PyTorch indexes it ---- */

/* A (2, 5, 3, 4) input whose target at (1, 2, 3) is 7: flat row 23. */
static void bad_label(clxent_context *ctx, int dims, clxent_target_check mode,
                      int which) {
    enum { N = 2, CC = 5, D1 = 3, D2 = 4, II = D1 * D2 };
    float x[N * CC * II];
    int64_t y[N * II];
    fx_rng rng = fx_rng_seed(11);
    fx_fill_uniform(&rng, x, N * CC * II, -3.0f, 3.0f);
    for (size_t r = 0; r < N * II; ++r) y[r] = (int64_t)(r % CC);
    y[1 * II + 2 * D2 + 3] = 7;
    clxent_tensor xt = t_make(ctx, x, NULL, N, CC, II,
                              x_layout(X_CONTIG, N, CC, II), CLXENT_F32);
    clxent_tensor yt = rows_make(ctx, NULL, y, N, II, R_COMPACT, CLXENT_I64);
    if (dims) {
        xt.inner_rank = yt.inner_rank = 2;
        xt.inner_dims[0] = yt.inner_dims[0] = D1;
        xt.inner_dims[1] = yt.inner_dims[1] = D2;
    }
    clxent_options o;
    clxent_options_init(&o);
    o.loss.reduction = CLXENT_REDUCTION_NONE;
    o.loss.target_check = mode;
    clxent_tensor loss = rows_make(ctx, NULL, NULL, N, II, R_COMPACT,
                                   CLXENT_F32);
    clxent_tensor g = t_make(ctx, NULL, NULL, N, CC, II,
                             x_layout(X_CONTIG, N, CC, II), CLXENT_F32);
    clxent_tensor_targets tg = {yt, no_tensor()};
    clxent_status st;
    const char *fn;
    if (which == 0) {
        fn = "clxent_cross_entropy_nd";
        st = clxent_cross_entropy_nd(ctx, &xt, &tg, NULL, &o, NULL, &loss,
                                     NULL, NULL, &g, NULL);
    } else if (which == 1) {
        fn = "clxent_cross_entropy_forward_nd";
        st = clxent_cross_entropy_forward_nd(ctx, &xt, &tg, NULL, &o, &loss,
                                             NULL, NULL, NULL);
    } else {
        fn = "clxent_nll_loss_nd";
        st = clxent_nll_loss_nd(ctx, &xt, &yt, NULL, &o, &loss, NULL);
    }
    if (mode == CLXENT_CHECK_DEFERRED) {
        fx_assert_status(ctx, st, CLXENT_STATUS_OK);
        st = clxent_finish(ctx);
    }
    fx_assert_status(ctx, st, CLXENT_STATUS_TARGET_OUT_OF_RANGE);
    const char *msg = clxent_context_message(ctx);
    const char *want[] = {dims ? "(1, 2, 3)" : "(1, 11)", "targets[23]", "7",
                          mode == CLXENT_CHECK_DEFERRED ? "clxent_finish"
                                                        : fn};
    for (int k = 0; k < 4; ++k)
        if (!strstr(msg, want[k]))
            fail_msg("%s (%s, %s check): message lacks \"%s\": %s", fn,
                     dims ? "inner_dims" : "no inner_dims",
                     mode == CLXENT_CHECK_SYNC ? "sync" : "deferred",
                     want[k], msg);
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    if (mode == CLXENT_CHECK_SYNC) { /* nothing written */
        unsigned char *b = fx_download(ctx, g.buffer);
        for (size_t i = 0; i < clxent_buffer_size(g.buffer); ++i)
            if (b[i] != 0x7f) fail_msg("%s: grad byte %zu written", fn, i);
        free(b);
        b = fx_download(ctx, loss.buffer);
        for (size_t i = 0; i < clxent_buffer_size(loss.buffer); ++i)
            if (b[i] != 0x7f) fail_msg("%s: loss byte %zu written", fn, i);
        free(b);
    }
    t_free(&xt);
    t_free(&yt);
    t_free(&loss);
    t_free(&g);
}

static void bad_labels(clxent_context *ctx, clxent_target_check mode) {
    for (int which = 0; which < 3; ++which)
        for (int dims = 1; dims >= 0; --dims)
            bad_label(ctx, dims, mode, which);
}

static void test_bad_label_host(void **state) {
    (void)state;
    bad_labels(fx_host(), CLXENT_CHECK_SYNC);
}

static void test_bad_label_device(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    bad_labels(dev, CLXENT_CHECK_SYNC);
}

/* The deferred check reports at clxent_finish; the header promises the
 * same position there. */
static void test_bad_label_device_deferred(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    bad_labels(dev, CLXENT_CHECK_DEFERRED);
}

/* Outputs must have strides that nest (sorted by stride, each passes the
 * span of the smaller ones; the header): softmax over 3 x 2 x 1 with outer
 * stride 2 and class stride 3 would write {0, 3, 2, 5, 4, 7}, no two alike,
 * but its strides interleave, so it is refused, with nothing written; the
 * same extents with nesting strides (3, 1) are accepted. */
static void interleaved_output(clxent_context *ctx) {
    enum { O = 3, C = 2 };
    float x[O * C] = {0.5f, -1.0f, 2.0f, 0.25f, -3.0f, 1.5f};
    clxent_tensor xt = t_make(ctx, x, NULL, O, C, 1,
                              x_layout(X_CONTIG, O, C, 1), CLXENT_F32);
    clxent_tensor got = t_make(ctx, NULL, NULL, O, C, 1, (lay){0, 2, 3, 1},
                               CLXENT_F32);
    clxent_status st = clxent_softmax_nd(ctx, &xt, NULL, &got, NULL);
    fx_assert_status(ctx, st, CLXENT_STATUS_INVALID_SHAPE);
    if (!strstr(clxent_context_message(ctx), "overlap"))
        fail_msg("interleaved output: %s", clxent_context_message(ctx));
    unsigned char *bytes = fx_download(ctx, got.buffer);
    for (size_t i = 0; i < clxent_buffer_size(got.buffer); ++i)
        if (bytes[i] != 0x7f) fail_msg("interleaved output: byte %zu written", i);
    free(bytes);
    clxent_tensor nested = t_make(ctx, NULL, NULL, O, C, 1, (lay){0, 3, 1, 1},
                                  CLXENT_F32);
    OK(ctx, clxent_softmax_nd(ctx, &xt, NULL, &nested, NULL));
    t_free(&xt);
    t_free(&got);
    t_free(&nested);
}

static void test_interleaved_output_host(void **state) {
    (void)state;
    interleaved_output(fx_host());
}

static void test_interleaved_output_device(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (dev) interleaved_output(dev);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_rows),
        cmocka_unit_test(test_kept_paths),
        cmocka_unit_test(test_kept_items),
        cmocka_unit_test(test_wide_rows),
        cmocka_unit_test(test_prefetch_same_bits),
        cmocka_unit_test(test_bad_label_host),
        cmocka_unit_test(test_interleaved_output_host),
        cmocka_unit_test(test_interleaved_output_device),
        cmocka_unit_test(test_bad_label_device),
        cmocka_unit_test(test_bad_label_device_deferred),
        cmocka_unit_test(test_matrix_vs_nd_host),
        cmocka_unit_test(test_matrix_vs_nd_device),
        cmocka_unit_test(test_options_one_by_one),
        cmocka_unit_test(test_broadcast_inputs),
        cmocka_unit_test(test_ieee),
        cmocka_unit_test(test_grid),
    };
    return fx_run_tests(tests, argc, argv);
}
