/* The sharded vocabulary (clxent.h, "Sharded vocabulary"; docs/semantics.md
 * 13.1) on the host backend and on the OpenCL device: the classes split
 * into 2 and 3 uneven shards, partial records per shard (views of the full
 * logits and probabilities, weight slices in buffers of their own),
 * combined on the context and by clxent_partial_combine_host, finalized and
 * differentiated per shard, must equal the unsharded clxent_cross_entropy_nd
 * on the same context for every option; the combine's order does not
 * matter; label smoothing uses the global C; bad arguments are refused
 * with nothing written. */
#include "fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PF = CLXENT_PARTIAL_FLOATS, MAXSH = 3 };
#define F32 CLXENT_F32
#define OK(ctx, call) fx_assert_status((ctx), (call), CLXENT_STATUS_OK)

typedef struct sh_case {
    size_t O, C, I;
    const size_t *cut; /* shard k: global classes [cut[k], cut[k + 1]) */
    int nsh;
    clxent_dtype idt;
    int probs, weights, ignore, grad_rows;
    int64_t ii; /* ignore_index, on every 4th row with ignore */
    float eps, zeta, cap, scale, G;
    clxent_reduction red;
    uint64_t seed;
    int masked; /* row 0: every third class -inf, without probability */
    int bad;    /* row 2: a label past C, under a deferred target check */
} sh_case;

/* A case's inputs on the host and on the context (bw[k]: shard k's
 * weights; bw[MAXSH]: all of them). */
typedef struct sh_set {
    float *x, *t, *w, *gr;
    int64_t *y;
    clxent_buffer *bx, *bt, *by, *bgr, *bw[MAXSH + 1];
} sh_set;
typedef struct sh_out { float *loss, *lse, *z, *grad; } sh_out;

static size_t n_rows(const sh_case *c) { return c->O * c->I; }
static size_t n_loss(const sh_case *c) {
    return c->red == CLXENT_REDUCTION_NONE ? n_rows(c) : 1;
}
static size_t cls(const sh_case *c, int k) { return c->cut[k + 1] - c->cut[k]; }

static clxent_tensor view(clxent_buffer *b, size_t off, size_t O, size_t C,
                          size_t I, size_t os, size_t cs, size_t is) {
    return (clxent_tensor){b, off, O, C, I, os, cs, is, F32, 0, {0}};
}
static clxent_tensor no_tensor(void) { return view(NULL, 0, 0, 0, 0, 0, 0, 0); }
/* Columns [b, b + Ck) of a contiguous O x C x I tensor. */
static clxent_tensor cols(const sh_case *c, clxent_buffer *buf, size_t b,
                          size_t Ck) {
    return view(buf, b * c->I, c->O, Ck, c->I, c->C * c->I, c->I, 1);
}
/* Records: row r = o * I + i at floats [8 r, 8 r + 8) (R x 8, as the host
 * combine reads them): class stride 1, inner stride 8. */
static clxent_tensor rec_t(const sh_case *c, clxent_buffer *b) {
    return view(b, 0, c->O, PF, c->I, PF * c->I, 1, PF);
}
static clxent_tensor loss_t(const sh_case *c, clxent_buffer *b) {
    int none = c->red == CLXENT_REDUCTION_NONE;
    return clxent_tensor_of(b, none ? c->O : 1, 1, none ? c->I : 1, F32);
}
static clxent_tensor rows_t(const sh_case *c, clxent_buffer *b) {
    return clxent_rows_of(b, c->O, c->I, F32);
}
static clxent_buffer *fill_buf(clxent_context *ctx, size_t floats) {
    return fx_upload(ctx, NULL, floats * sizeof(float)); /* 0x7f bytes */
}
static float *down(clxent_context *ctx, clxent_buffer *b) { /* releases b */
    float *p = fx_download(ctx, b);
    clxent_buffer_release(b);
    return p;
}
static void free_out(sh_out *o) {
    free(o->loss); free(o->lse); free(o->z); free(o->grad);
}

static clxent_options opts(const sh_case *c) {
    clxent_options o;
    clxent_options_init(&o);
    o.loss.reduction = c->red;
    o.loss.ignore_index = c->ii;
    o.loss.label_smoothing = c->eps;
    o.loss.z_loss = c->zeta;
    o.loss.grad_scale = c->G;
    o.softcap = c->cap;
    o.logit_scale = c->scale;
    if (c->bad) o.loss.target_check = CLXENT_CHECK_DEFERRED;
    return o;
}

/* After a call that reads the targets: with the bad row, the deferred
 * check's report, at the next finish (it names the row). */
static void settle(clxent_context *ctx, const sh_case *c) {
    if (!c->bad) return;
    fx_assert_status(ctx, clxent_finish(ctx),
                     CLXENT_STATUS_TARGET_OUT_OF_RANGE);
    if (!strstr(clxent_context_message(ctx), "[2]"))
        fail_msg("deferred report: %s", clxent_context_message(ctx));
}

static sh_set set_make(clxent_context *ctx, const sh_case *c) {
    size_t O = c->O, C = c->C, I = c->I, R = n_rows(c), n = O * C * I;
    fx_rng g = fx_rng_seed(c->seed);
    sh_set s = {malloc(n * 4), malloc(n * 4), malloc(C * 4), malloc(R * 4),
                malloc(R * 8), NULL, NULL, NULL, NULL, {NULL}};
    int32_t *y32 = malloc(R * 4);
    assert_true(s.x && s.t && s.w && s.gr && s.y && y32);
    fx_fill_uniform(&g, s.x, n, -6.0f, 6.0f);
    fx_fill_uniform(&g, s.t, n, 0.0f, 1.0f);
    for (size_t j = 0; c->masked && j < C; j += 3)
        s.x[j * I] = -INFINITY, s.t[j * I] = 0.0f;
    for (size_t r = 0; r < R; ++r) { /* probabilities: rows sum to 1 */
        float *p = s.t + (r / I) * C * I + r % I, sum = 0.0f;
        for (size_t j = 0; j < C; ++j) sum += p[j * I];
        for (size_t j = 0; j < C; ++j) p[j * I] /= sum;
    }
    fx_fill_uniform(&g, s.w, C, 0.25f, 2.0f);
    fx_fill_uniform(&g, s.gr, R, -2.0f, 2.0f);
    for (size_t r = 0; r < R; ++r) {
        s.y[r] = c->ignore && r % 4 == 1 ? c->ii : (int64_t)(fx_next(&g) % C);
        if (c->masked && r == 0) s.y[r] = 1; /* the target not masked */
        if (c->bad && r == 2) s.y[r] = (int64_t)C + 5;
        y32[r] = (int32_t)s.y[r];
    }
    s.bx = fx_upload(ctx, s.x, n * 4);
    s.bt = fx_upload(ctx, s.t, n * 4);
    s.by = c->idt == CLXENT_I32 ? fx_upload(ctx, y32, R * 4)
                                : fx_upload(ctx, s.y, R * 8);
    s.bgr = fx_upload(ctx, s.gr, R * 4);
    for (int k = 0; k < c->nsh; ++k)
        s.bw[k] = fx_upload(ctx, s.w + c->cut[k], cls(c, k) * 4);
    s.bw[MAXSH] = fx_upload(ctx, s.w, C * 4);
    free(y32);
    return s;
}
static void set_free(sh_set *s) {
    clxent_buffer *b[] = {s->bx, s->bt, s->by, s->bgr};
    for (int k = 0; k < 4 + MAXSH + 1; ++k)
        clxent_buffer_release(k < 4 ? b[k] : s->bw[k - 4]);
    free(s->x); free(s->t); free(s->w); free(s->gr); free(s->y);
}

/* Class indices (global; none for finalize's probabilities), or shard
 * columns [b, b + Ck) of the probabilities. */
static clxent_tensor_targets targets_of(const sh_case *c, const sh_set *s,
                                        size_t b, size_t Ck) {
    clxent_tensor_targets tg = {no_tensor(), no_tensor()};
    if (c->probs && Ck) tg.probs = cols(c, s->bt, b, Ck);
    if (!c->probs) tg.indices = clxent_rows_of(s->by, c->O, c->I, c->idt);
    return tg;
}
static clxent_vector weights_of(const sh_case *c, const sh_set *s, int k) {
    return (clxent_vector){s->bw[k], 0, k == MAXSH ? c->C : cls(c, k), F32};
}

/* The unsharded fused call: loss, lse, z-loss part, gradient. */
static sh_out run_full(clxent_context *ctx, const sh_case *c,
                       const sh_set *s) {
    clxent_tensor x = cols(c, s->bx, 0, c->C), gr = rows_t(c, s->bgr);
    clxent_tensor_targets tg = targets_of(c, s, 0, c->C);
    clxent_vector w = weights_of(c, s, MAXSH);
    clxent_buffer *lb = fill_buf(ctx, n_loss(c)), *sb = fill_buf(ctx, n_rows(c)),
                  *zb = fill_buf(ctx, n_loss(c)),
                  *gb = fill_buf(ctx, c->O * c->C * c->I);
    clxent_tensor loss = loss_t(c, lb), lse = rows_t(c, sb), z = loss_t(c, zb),
                  g = clxent_tensor_of(gb, c->O, c->C, c->I, F32);
    clxent_options o = opts(c);
    OK(ctx, clxent_cross_entropy_nd(ctx, &x, &tg, c->weights ? &w : NULL, &o,
                                    c->grad_rows ? &gr : NULL, &loss, &lse,
                                    &z, &g, NULL));
    settle(ctx, c);
    return (sh_out){down(ctx, lb), down(ctx, sb), down(ctx, zb), down(ctx, gb)};
}

/* Step 1: shard k's records (a new buffer). */
static clxent_buffer *run_partial(clxent_context *ctx, const sh_case *c,
                                  const sh_set *s, int k) {
    clxent_tensor x = cols(c, s->bx, c->cut[k], cls(c, k));
    clxent_tensor_targets tg = targets_of(c, s, c->cut[k], cls(c, k));
    clxent_vector w = weights_of(c, s, k);
    clxent_shard sh = {(int64_t)c->cut[k], (int64_t)c->C};
    clxent_buffer *rb = fill_buf(ctx, n_rows(c) * PF);
    clxent_tensor rt = rec_t(c, rb);
    clxent_options o = opts(c);
    OK(ctx, clxent_cross_entropy_partial_nd(ctx, &x, &tg, c->weights ? &w : NULL,
                                            &sh, &o, &rt, NULL));
    settle(ctx, c);
    return rb;
}

/* Step 2 on ctx: (r0 (+) r1) (+) r2, the later steps in place. */
static clxent_buffer *combine_dev(clxent_context *ctx, const sh_case *c,
                                  clxent_buffer *const *recs) {
    clxent_buffer *acc = fill_buf(ctx, n_rows(c) * PF);
    clxent_tensor a = rec_t(c, acc), r0 = rec_t(c, recs[0]);
    for (int k = 1; k < c->nsh; ++k) {
        clxent_tensor rk = rec_t(c, recs[k]);
        OK(ctx, clxent_partial_combine(ctx, k == 1 ? &r0 : &a, &rk, &a, NULL));
    }
    return acc;
}

/* Step 2 on the host, the same order, over the downloaded records. */
static float *combine_host(clxent_context *ctx, const sh_case *c,
                           clxent_buffer *const *recs) {
    float *acc = fx_download(ctx, recs[0]);
    for (int k = 1; k < c->nsh; ++k) {
        float *rk = fx_download(ctx, recs[k]);
        assert_int_equal(clxent_partial_combine_host(acc, rk, acc, n_rows(c)),
                         CLXENT_STATUS_OK);
        free(rk);
    }
    return acc;
}

/* Step 3: loss, lse and z-loss part from combined records. */
static sh_out run_finalize(clxent_context *ctx, const sh_case *c,
                           const sh_set *s, clxent_buffer *rec) {
    clxent_tensor rt = rec_t(c, rec);
    clxent_tensor_targets tg = targets_of(c, s, 0, 0);
    clxent_shard sh = {0, (int64_t)c->C};
    clxent_buffer *lb = fill_buf(ctx, n_loss(c)), *sb = fill_buf(ctx, n_rows(c)),
                  *zb = fill_buf(ctx, n_loss(c));
    clxent_tensor loss = loss_t(c, lb), lse = rows_t(c, sb), z = loss_t(c, zb);
    clxent_options o = opts(c);
    OK(ctx, clxent_cross_entropy_finalize_nd(ctx, &rt, &tg, &sh, &o, &loss,
                                             &lse, &z, NULL));
    settle(ctx, c);
    return (sh_out){down(ctx, lb), down(ctx, sb), down(ctx, zb), NULL};
}

/* Step 3 on shard k: the gradient of its columns, O x Ck x I. */
static float *run_backward(clxent_context *ctx, const sh_case *c,
                           const sh_set *s, clxent_buffer *rec, int k) {
    size_t Ck = cls(c, k);
    clxent_tensor x = cols(c, s->bx, c->cut[k], Ck), rt = rec_t(c, rec),
                  gr = rows_t(c, s->bgr);
    clxent_tensor_targets tg = targets_of(c, s, c->cut[k], Ck);
    clxent_vector w = weights_of(c, s, k);
    clxent_buffer *gb = fill_buf(ctx, c->O * Ck * c->I);
    clxent_tensor g = clxent_tensor_of(gb, c->O, Ck, c->I, F32);
    clxent_shard sh = {(int64_t)c->cut[k], (int64_t)c->C};
    clxent_options o = opts(c);
    OK(ctx, clxent_cross_entropy_backward_shard_nd(
                ctx, &x, &tg, c->weights ? &w : NULL, &sh, &o, &rt,
                c->grad_rows ? &gr : NULL, &g, NULL));
    settle(ctx, c);
    return down(ctx, gb);
}

/* got[k] vs want[k] within tol * (rel ? max(1, |want|) : 1). */
static void near(const float *got, const float *want, size_t n, double tol,
                 int rel, const char *what, const char *name) {
    for (size_t k = 0; k < n; ++k) {
        double wv = want[k], t = rel ? tol * fmax(1.0, fabs(wv)) : tol;
        if (!fx_close(got[k], wv, t, 0.0))
            fail_msg("%s: %s[%zu] = %.9g, want %.9g", name, what, k,
                     (double)got[k], wv);
    }
}
/* a and b hold the same bits; else names the first float that differs. */
static void same_bits(const float *a, const float *b, size_t n,
                      const char *what, const char *name) {
    for (size_t k = 0; k < n; ++k)
        if (memcmp(&a[k], &b[k], sizeof(float)))
            fail_msg("%s: %s: row %zu field %zu: %a vs %a", name, what,
                     k / PF, k % PF, (double)a[k], (double)b[k]);
}

/* 1. Every step against the unsharded call; both combines, bit for bit
 * equal, each finalized and differentiated. keep (optional): the
 * unsharded outputs and the sharded ones (host combine). */
static void equal_case(clxent_context *ctx, const sh_case *c, sh_out *keep) {
    char name[256], nm[300];
    snprintf(name, sizeof name, "(%zu, %zu, %zu) %d shards%s%s%s%s red=%d "
             "eps=%g z=%g cap=%g scale=%g G=%g", c->O, c->C, c->I, c->nsh,
             c->probs ? " probs" : "", c->weights ? " w" : "",
             c->ignore ? " ign" : "", c->grad_rows ? " gr" : "", (int)c->red,
             (double)c->eps, (double)c->zeta, (double)c->cap,
             (double)c->scale, (double)c->G);
    size_t R = n_rows(c), I = c->I;
    sh_set s = set_make(ctx, c);
    sh_out ref = run_full(ctx, c, &s);
    clxent_buffer *recs[MAXSH];
    for (int k = 0; k < c->nsh; ++k) recs[k] = run_partial(ctx, c, &s, k);
    clxent_buffer *comb[2] = {combine_dev(ctx, c, recs), NULL};
    float *host = combine_host(ctx, c, recs), *dev = fx_download(ctx, comb[0]);
    comb[1] = fx_upload(ctx, host, R * PF * sizeof(float));
    for (int v = 0; v < 2; ++v) {
        snprintf(nm, sizeof nm, "%s [%s combine]", name, v ? "host" : "device");
        sh_out got = run_finalize(ctx, c, &s, comb[v]);
        near(got.loss, ref.loss, n_loss(c), 1e-5, 1, "loss", nm);
        near(got.lse, ref.lse, R, 1e-5, 1, "lse", nm);
        near(got.z, ref.z, n_loss(c), 1e-5, 1, "z_loss_out", nm);
        for (int k = 0; k < c->nsh; ++k) {
            float *g = run_backward(ctx, c, &s, comb[v], k);
            for (size_t o = 0; o < c->O; ++o) { /* [(c - begin) * I + i] */
                char what[64];
                snprintf(what, sizeof what, "shard %d grad, outer %zu", k, o);
                near(g + o * cls(c, k) * I, ref.grad + (o * c->C + c->cut[k]) * I,
                     cls(c, k) * I, 1e-5, 0, what, nm);
            }
            free(g);
        }
        if (keep && v) keep[1] = got; else free_out(&got);
    }
    /* the same f32 steps; a device's exp may round the rescale factors
     * apart from the host's expf in the last bit */
    near(dev, host, R * PF, 1e-6, 1, "clxent_partial_combine vs _host", name);
    for (int k = 0; k < c->nsh; ++k) clxent_buffer_release(recs[k]);
    clxent_buffer_release(comb[0]);
    clxent_buffer_release(comb[1]);
    free(host);
    free(dev);
    if (keep) keep[0] = ref; else free_out(&ref);
    set_free(&s);
}

static const size_t CUT50_2[] = {0, 10, 50}, CUT50_3[] = {0, 4, 21, 50};
static const size_t CUT37_2[] = {0, 10, 37}, CUT37_3[] = {0, 4, 21, 37};

/* 7 x 50 x 1 (class indices int32) or 3 x 37 x 5 (int64), mean. */
static sh_case base_case(int nd, int nsh, uint64_t seed) {
    sh_case c = {nd ? 3 : 7, nd ? 37 : 50, nd ? 5 : 1, NULL, nsh,
                 nd ? CLXENT_I64 : CLXENT_I32, 0, 0, 0, 0, -100, 0.0f, 0.0f,
                 0.0f, 1.0f, 1.0f, CLXENT_REDUCTION_MEAN, seed, 0, 0};
    c.cut = nd ? (nsh == 2 ? CUT37_2 : CUT37_3) : (nsh == 2 ? CUT50_2 : CUT50_3);
    return c;
}

static void equality(clxent_context *ctx) {
    for (int nd = 0; nd < 2; ++nd)
        for (int nsh = 2; nsh <= 3; ++nsh)
            for (int opt = 0; opt < 7; ++opt)
                for (int red = 0; red < 3; ++red) {
                    if (opt == 6 && red != CLXENT_REDUCTION_NONE) continue;
                    sh_case c = base_case(nd, nsh, 100 + 10 * (uint64_t)opt + red);
                    c.red = (clxent_reduction)red;
                    switch (opt) { /* 0: no option; 1: ignore class 7 in N-d */
                    case 1: c.weights = c.ignore = 1; c.eps = 0.1f; c.ii = nd ? 7 : -100; break;
                    case 2: c.zeta = 1e-3f; break;
                    case 3: c.cap = 5.0f; c.scale = 0.5f; break;
                    case 4: c.probs = 1; c.eps = 0.1f; c.weights = nd; break;
                    case 5: c.G = 2.0f; break;
                    case 6: c.grad_rows = c.weights = 1; break;
                    }
                    equal_case(ctx, &c, NULL);
                }
}

/* A bad label under a deferred check (devices only: the host reports it
 * before writing anything): the sharded steps give its row what the
 * unsharded call does, a NaN loss and z-loss part (a NaN sum and mean) and
 * a zero gradient, with smoothing and z-loss too, where the row's loss was
 * finite and its gradient not zero; the other rows as usual. */
static void deferred_bad(clxent_context *ctx) {
    for (int nd = 0; nd < 2; ++nd)
        for (int v = 0; v < 3; ++v) {
            sh_case c = base_case(nd, 2, 900 + 3 * (uint64_t)nd + v);
            c.bad = 1;
            c.weights = 1;
            c.eps = v ? 0.1f : 0.0f;
            c.zeta = v ? 1e-3f : 0.0f;
            c.red = v == 2 ? CLXENT_REDUCTION_MEAN : CLXENT_REDUCTION_NONE;
            sh_out k[2];
            equal_case(ctx, &c, k);
            size_t at = v == 2 ? 0 : 2; /* the mean, or the bad row's */
            if (!isnan(k[0].loss[at]) || !isnan(k[1].loss[at]) ||
                (v && (!isnan(k[0].z[at]) || !isnan(k[1].z[at]))))
                fail_msg("deferred bad row, nd %d v %d: loss %g and %g, z "
                         "%g and %g (unsharded, sharded), want NaN", nd, v,
                         (double)k[0].loss[at], (double)k[1].loss[at],
                         (double)k[0].z[at], (double)k[1].z[at]);
            free_out(&k[0]);
            free_out(&k[1]);
        }
}

/* 4. eps = 0.2: the sharded loss is the unsharded one, and far from what
 * eps / C_k (the local C, Megatron-LM's smoothing) would give. */
static void global_c(clxent_context *ctx) {
    sh_case c = base_case(0, 3, 77);
    c.eps = 0.2f;
    c.red = CLXENT_REDUCTION_NONE;
    sh_out k[2];
    equal_case(ctx, &c, k);
    sh_set d = set_make(ctx, &c);
    for (size_t r = 0; r < c.O; ++r) {
        double local = 0.0; /* eps sum_c (1/C_k - 1/C) (-log p_c) */
        for (int s = 0; s < c.nsh; ++s)
            for (size_t j = c.cut[s]; j < c.cut[s + 1]; ++j)
                local += c.eps * (1.0 / (double)cls(&c, s) - 1.0 / (double)c.C) *
                         ((double)k[0].lse[r] - d.x[r * c.C + j]);
        double diff = fabs((double)k[1].loss[r] - k[0].loss[r]);
        double tol = 1e-5 * fmax(1.0, fabs(k[0].loss[r]));
        if (diff > tol || fabs(local) < 1000.0 * tol)
            fail_msg("eps 0.2 row %zu: sharded - unsharded %g; the local C "
                     "would add %g (tolerance %g)", r, diff, local, tol);
    }
    free_out(&k[0]);
    free_out(&k[1]);
    set_free(&d);
}

/* 2. a (+) (b (+) c) against (c (+) b) (+) a; a (+) b against b (+) a bit
 * for bit, on ctx and by the host function (there also with an empty
 * shard, a tied maximum, a NaN and random fields); out may be b. */
static void combine_order(clxent_context *ctx) {
    sh_case c = base_case(1, 3, 55);
    c.weights = c.ignore = 1;
    c.eps = 0.1f;
    c.red = CLXENT_REDUCTION_NONE;
    size_t R = n_rows(&c), n = R * PF;
    sh_set d = set_make(ctx, &c);
    clxent_buffer *r[3], *ub = fill_buf(ctx, n), *vb = fill_buf(ctx, n);
    clxent_tensor t[3], u = rec_t(&c, ub), v = rec_t(&c, vb);
    for (int k = 0; k < 3; ++k) {
        r[k] = run_partial(ctx, &c, &d, k);
        t[k] = rec_t(&c, r[k]);
    }
    OK(ctx, clxent_partial_combine(ctx, &t[1], &t[2], &u, NULL));
    OK(ctx, clxent_partial_combine(ctx, &t[0], &u, &u, NULL));
    OK(ctx, clxent_partial_combine(ctx, &t[2], &t[1], &v, NULL));
    OK(ctx, clxent_partial_combine(ctx, &v, &t[0], &v, NULL));
    float *x = fx_download(ctx, ub), *y = fx_download(ctx, vb);
    for (size_t k = 0; k < n; ++k) {
        if (k % PF == CLXENT_PARTIAL_SUM_LO) continue;
        double a = x[k], b = y[k]; /* S = SUM + SUM_LO */
        if (k % PF == CLXENT_PARTIAL_SUM) a += x[k + 1], b += y[k + 1];
        if (!fx_close(a, b, 1e-30, 1e-6))
            fail_msg("row %zu field %zu: a+(b+c) %.9g, (c+b)+a %.9g", k / PF,
                     k % PF, a, b);
    }
    sh_out l1 = run_finalize(ctx, &c, &d, ub), l2 = run_finalize(ctx, &c, &d, vb);
    near(l1.loss, l2.loss, R, 1e-6, 1, "loss", "a+(b+c) vs (c+b)+a");
    near(l1.lse, l2.lse, R, 1e-6, 1, "lse", "a+(b+c) vs (c+b)+a");
    free(x);
    free(y);
    OK(ctx, clxent_partial_combine(ctx, &t[0], &t[1], &u, NULL));
    OK(ctx, clxent_partial_combine(ctx, &t[1], &t[0], &v, NULL));
    x = fx_download(ctx, ub), y = fx_download(ctx, vb);
    same_bits(x, y, n, "a+b vs b+a", "clxent_partial_combine");
    float *ha = fx_download(ctx, r[0]), *hb = fx_download(ctx, r[1]);
    float *o1 = malloc(n * 4), *o2 = malloc(n * 4);
    assert_true(o1 && o2);
    fx_rng g = fx_rng_seed(9);
    ha[0] = -INFINITY; /* row 0: no class */
    ha[1] = ha[2] = ha[3] = ha[4] = 0.0f;
    hb[PF] = ha[PF];  /* row 1: a tie */
    ha[2 * PF] = NAN; /* row 2 */
    for (size_t k = 3 * PF; k < n; k += 2) ha[k] = (float)fx_uniform(&g, 0, 3);
    assert_int_equal(clxent_partial_combine_host(ha, hb, o1, R), CLXENT_STATUS_OK);
    assert_int_equal(clxent_partial_combine_host(hb, ha, o2, R), CLXENT_STATUS_OK);
    same_bits(o1, o2, n, "a+b vs b+a", "clxent_partial_combine_host");
    assert_int_equal(clxent_partial_combine_host(ha, hb, hb, R), CLXENT_STATUS_OK);
    same_bits(o1, hb, n, "out = b vs a new out", "clxent_partial_combine_host");
    float *bufs[] = {x, y, ha, hb, o1, o2};
    clxent_buffer *all[] = {r[0], r[1], r[2], ub, vb};
    for (int k = 0; k < 6; ++k) free(bufs[k]);
    for (int k = 0; k < 5; ++k) clxent_buffer_release(all[k]);
    free_out(&l1);
    free_out(&l2);
    set_free(&d);
}

/* Smoothing and z-loss of f32 denormals (eps/C rounds to 0 in f32) with
 * masked classes: sharded and unsharded on ctx give the host's unsharded
 * loss and gradient, inf for the masked row (eps/C times inf), not
 * 0*inf = NaN. */
static void denormal(clxent_context *ctx) {
    for (int probs = 0; probs < 2; ++probs) {
        sh_case c = base_case(0, 2, 500 + (uint64_t)probs);
        c.red = CLXENT_REDUCTION_NONE;
        c.eps = 0x1p-149f;
        c.zeta = 4.08955e-41f;
        c.probs = probs;
        c.weights = 1;
        c.masked = 1;
        char name[64];
        snprintf(name, sizeof name, "denormal eps%s", probs ? " probs" : "");
        sh_out keep[2];
        equal_case(ctx, &c, keep);
        sh_set hs = set_make(fx_host(), &c);
        sh_out want = run_full(fx_host(), &c, &hs);
        size_t R = n_rows(&c);
        near(keep[0].loss, want.loss, R, 1e-5, 1, "unsharded loss", name);
        near(keep[1].loss, want.loss, R, 1e-5, 1, "sharded loss", name);
        near(keep[0].grad, want.grad, R * c.C, 1e-5, 0, "grad", name);
        if (keep[1].loss[0] != INFINITY)
            fail_msg("%s: masked row: loss %g, want inf", name,
                     (double)keep[1].loss[0]);
        free_out(&keep[0]);
        free_out(&keep[1]);
        free_out(&want);
        set_free(&hs);
    }
}

/* The buffer still holds the 0x7f fill everywhere. */
static void untouched(clxent_context *ctx, clxent_buffer *b, const char *what) {
    unsigned char *p = fx_download(ctx, b);
    for (size_t i = 0; i < clxent_buffer_size(b); ++i)
        if (p[i] != 0x7f) fail_msg("%s: byte %zu written", what, i);
    free(p);
}

/* 3. Shard [10, 37) of 37 classes, 4 x 27 logits. bad: 37 and -5 are out
 * of range; good: 5 and 10 belong to another shard, 15 and 36 to this. */
static void errors(clxent_context *ctx) {
    enum { O = 4, CK = 27, B = 10, TOT = 37 };
    float x[O * CK], one[PF] = {0};
    fx_rng g = fx_rng_seed(3);
    fx_fill_uniform(&g, x, O * CK, -3.0f, 3.0f);
    int64_t bad[O] = {37, -5, 5, 15}, good[O] = {15, 5, 36, 10};
    clxent_buffer *xb = fx_upload(ctx, x, sizeof x),
                  *yb = fx_upload(ctx, bad, sizeof bad),
                  *gb = fx_upload(ctx, good, sizeof good),
                  *rb = fill_buf(ctx, O * PF), *r7 = fill_buf(ctx, O * 7),
                  *db = fill_buf(ctx, O * CK), *lb = fill_buf(ctx, 1);
    clxent_tensor xt = clxent_tensor_of(xb, O, CK, 1, F32),
                  rt = clxent_tensor_of(rb, O, PF, 1, F32),
                  r7t = clxent_tensor_of(r7, O, 7, 1, F32),
                  dt = clxent_tensor_of(db, O, CK, 1, F32),
                  lt = clxent_tensor_of(lb, 1, 1, 1, F32);
    clxent_tensor_targets tb = {clxent_rows_of(yb, O, 1, CLXENT_I64), no_tensor()},
                          tg = {clxent_rows_of(gb, O, 1, CLXENT_I64), no_tensor()};
    clxent_options o;
    clxent_options_init(&o);
    clxent_shard s = {B, TOT};
    const clxent_shard bad_shard[] = {{B, 0}, {B, -1}, {11, TOT}, {-1, TOT}};
#define ST(want, call) fx_assert_status(ctx, (call), CLXENT_STATUS_##want)
#define PARTIAL(t, sp, r) clxent_cross_entropy_partial_nd(ctx, &xt, t, NULL, sp, &o, r, NULL)
#define BACKWARD(t, sp) \
    clxent_cross_entropy_backward_shard_nd(ctx, &xt, t, NULL, sp, &o, &rt, NULL, &dt, NULL)
#define FINALIZE(r, sp) clxent_cross_entropy_finalize_nd(ctx, r, &tg, sp, &o, &lt, NULL, NULL, NULL)
    ST(TARGET_OUT_OF_RANGE, PARTIAL(&tb, &s, &rt));
    ST(TARGET_OUT_OF_RANGE, BACKWARD(&tb, &s));
    for (int k = 0; k < 4; ++k) {
        ST(INVALID_ARGUMENT, PARTIAL(&tg, &bad_shard[k], &rt));
        ST(INVALID_ARGUMENT, BACKWARD(&tg, &bad_shard[k]));
        if (k < 2) ST(INVALID_ARGUMENT, FINALIZE(&rt, &bad_shard[k]));
    }
    ST(NULL_POINTER, PARTIAL(&tg, NULL, &rt));
    ST(NULL_POINTER, BACKWARD(&tg, NULL));
    ST(NULL_POINTER, FINALIZE(&rt, NULL));
    ST(INVALID_SHAPE, PARTIAL(&tg, &s, &r7t));
    ST(INVALID_SHAPE, FINALIZE(&r7t, &s));
    ST(INVALID_SHAPE, clxent_partial_combine(ctx, &r7t, &r7t, &rt, NULL));
    ST(INVALID_SHAPE, clxent_partial_combine(ctx, &rt, &rt, &r7t, NULL));
    untouched(ctx, rb, "records after the refused calls");
    untouched(ctx, r7, "records of 7 classes");
    untouched(ctx, db, "grad after the refused calls");
    untouched(ctx, lb, "loss after the refused calls");
    /* another shard's index is fine: that row owns nothing here */
    ST(OK, PARTIAL(&tg, &s, &rt));
#undef PARTIAL
#undef BACKWARD
#undef FINALIZE
    float *rec = fx_download(ctx, rb);
    for (int r = 0; r < O; ++r) {
        int own = good[r] >= B && good[r] < B + CK;
        const float *q = rec + r * PF;
        float xy = own ? x[r * CK + (good[r] - B)] : 0.0f;
        if (q[CLXENT_PARTIAL_OWN] != (float)own || q[CLXENT_PARTIAL_XY] != xy ||
            q[CLXENT_PARTIAL_WY] != (float)own)
            fail_msg("row %d (target %lld): own %g xy %g wy %g, want %d %g %d",
                     r, (long long)good[r], (double)q[CLXENT_PARTIAL_OWN],
                     (double)q[CLXENT_PARTIAL_XY], (double)q[CLXENT_PARTIAL_WY],
                     own, (double)xy, own);
    }
    free(rec);
    for (int k = 0; k < 3; ++k)
        assert_int_equal(clxent_partial_combine_host(k ? one : NULL, k != 1 ? one : NULL,
                                                     k != 2 ? one : NULL, 1),
                         CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_partial_combine_host(NULL, NULL, NULL, 0),
                     CLXENT_STATUS_OK);
    clxent_buffer *all[] = {xb, yb, gb, rb, r7, db, lb};
    for (int k = 0; k < 7; ++k) clxent_buffer_release(all[k]);
}

/* Combined records that count a target's class twice (shard 1 combined
 * twice) or not at all (shard 0's records alone): finalize and backward
 * refuse them, naming the first such row, and write nothing; under a
 * deferred check (devices) the call runs, the row's loss is NaN and
 * clxent_finish reports it. Class indices only: probability records have
 * no OWN. */
static void own_count(clxent_context *ctx, int deferred) {
    for (int nd = 0; nd < 2; ++nd)
        for (int twice = 0; twice < 2; ++twice) {
            sh_case c = base_case(nd, 2, 60 + 2 * (uint64_t)nd + twice);
            c.red = CLXENT_REDUCTION_NONE;
            sh_set s = set_make(ctx, &c);
            clxent_buffer *r[2] = {run_partial(ctx, &c, &s, 0),
                                   run_partial(ctx, &c, &s, 1)};
            clxent_tensor a = rec_t(&c, r[0]), b = rec_t(&c, r[1]);
            if (twice) {
                OK(ctx, clxent_partial_combine(ctx, &a, &b, &a, NULL));
                OK(ctx, clxent_partial_combine(ctx, &a, &b, &a, NULL));
            }
            size_t first = 0; /* the first row whose class is in shard 1 */
            while (first < n_rows(&c) && s.y[first] < (int64_t)c.cut[1])
                ++first;
            assert_true(first < n_rows(&c));
            clxent_tensor_targets tg = targets_of(&c, &s, 0, 0);
            clxent_tensor x = cols(&c, s.bx, 0, cls(&c, 0));
            clxent_shard all = {0, (int64_t)c.C}, s0 = {0, (int64_t)c.C};
            clxent_options o = opts(&c);
            if (deferred) o.loss.target_check = CLXENT_CHECK_DEFERRED;
            clxent_buffer *lb = fill_buf(ctx, n_rows(&c)),
                          *gb = fill_buf(ctx, c.O * cls(&c, 0) * c.I);
            clxent_tensor loss = loss_t(&c, lb),
                          g = clxent_tensor_of(gb, c.O, cls(&c, 0), c.I, F32);
            char row[32];
            snprintf(row, sizeof row, "records[%zu]", first);
            for (int step = 0; step < 2; ++step) {
                clxent_status st =
                    step ? clxent_cross_entropy_backward_shard_nd(
                               ctx, &x, &tg, NULL, &s0, &o, &a, NULL, &g, NULL)
                         : clxent_cross_entropy_finalize_nd(
                               ctx, &a, &tg, &all, &o, &loss, NULL, NULL,
                               NULL);
                if (deferred) {
                    fx_assert_status(ctx, st, CLXENT_STATUS_OK);
                    st = clxent_finish(ctx);
                }
                fx_assert_status(ctx, st, CLXENT_STATUS_INVALID_ARGUMENT);
                const char *m = clxent_context_message(ctx);
                if (!strstr(m, row) || !strstr(m, "OWN"))
                    fail_msg("nd %d twice %d step %d: want %s: %s", nd, twice,
                             step, row, m);
            }
            if (deferred) {
                float *l = down(ctx, lb);
                if (!isnan(l[first]))
                    fail_msg("deferred: loss[%zu] = %g, want NaN", first,
                             (double)l[first]);
                free(l);
                clxent_buffer_release(gb);
            } else {
                untouched(ctx, lb, "loss of refused records");
                untouched(ctx, gb, "grad of refused records");
                clxent_buffer_release(lb);
                clxent_buffer_release(gb);
            }
            clxent_buffer_release(r[0]);
            clxent_buffer_release(r[1]);
            set_free(&s);
        }
}
static void own(clxent_context *ctx) { own_count(ctx, 0); }

#define BOTH(fn)                                                               \
    static void test_##fn##_host(void **s) { (void)s; fn(fx_host()); }        \
    static void test_##fn##_device(void **s) {                                 \
        (void)s;                                                               \
        clxent_context *dev = fx_device();                                     \
        if (dev) fn(dev);                                                      \
    }
BOTH(equality)
BOTH(combine_order)
BOTH(errors)
BOTH(global_c)
BOTH(denormal)
BOTH(own)

static void test_deferred_bad_device(void **s) {
    (void)s;
    clxent_context *dev = fx_device();
    if (dev) deferred_bad(dev);
    if (dev) own_count(dev, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_host), cmocka_unit_test(test_combine_order_host),
        cmocka_unit_test(test_global_c_host), cmocka_unit_test(test_equality_host),
        cmocka_unit_test(test_errors_device), cmocka_unit_test(test_combine_order_device),
        cmocka_unit_test(test_global_c_device), cmocka_unit_test(test_equality_device),
        cmocka_unit_test(test_denormal_host), cmocka_unit_test(test_denormal_device),
        cmocka_unit_test(test_own_host), cmocka_unit_test(test_own_device),
        cmocka_unit_test(test_deferred_bad_device),
    };
    return cmocka_run_group_tests(tests, NULL, fx_group_teardown);
}
