/* The tensor calls (clxent.h, "Tensors with the class axis anywhere")
 * beyond test_nd.c's numerics, on the cases of common/nd_harness.c: the
 * prefetches and the tails in pieces of the CPU mapping change no bit; the matrix calls and the
 * _nd calls of inner 1 give the same bits; a bad label names its PyTorch
 * position; an output whose strides interleave is refused.
 *
 * CLXENT_ND_QUICK=1 runs a few small shapes only (the Oclgrind pass,
 * tests/oclgrind_nd.sh). */
#include "nd_harness.h"

/* ---- the prefetches (nd_prefetch): the same bits without them ---- */

static size_t res_len(const nd_case *c, int k) {
    size_t nl = c->red == CLXENT_REDUCTION_NONE ? n_rows(c) : 1;
    switch (k) {
    case O_MAX: case O_SUM: case O_FLSE: case O_ULSE: return n_rows(c);
    case O_NLL: case O_FL: case O_FZ: case O_UL: case O_UZ: case O_IPL:
        return nl;
    default: return n_elems(c);
    }
}

/* The case with the device parameter `param` at `on` and at `off` (left
 * at `on`): every output bit for bit the same, and right. */
static void same_bits_without(clxent_context *dev, const nd_case *c,
                              const char *param, long long on,
                              long long off) {
    char name[384];
    nd_name(c, name, sizeof name);
    nd_data d = nd_make(c);
    nd_res ref = run_all(fx_host(), c, &d, NULL, name);
    OK(dev, clxent_context_set_param(dev, param, on));
    nd_res a = run_all(dev, c, &d, &ref, name);
    OK(dev, clxent_context_set_param(dev, param, off));
    nd_res b = run_all(dev, c, &d, &ref, name);
    OK(dev, clxent_context_set_param(dev, param, on));
    compare_case(c, &a, &ref, name);
    for (int k = 0; k < O_COUNT; ++k) {
        if (!a.v[k] || !b.v[k]) continue;
        size_t n = res_len(c, k);
        if (memcmp(a.v[k], b.v[k], n * sizeof(float)) != 0)
            fail_msg("%s: %s differs with %s %lld and %lld", name,
                     o_name[k], param, on, off);
    }
    res_free(&ref);
    res_free(&a);
    res_free(&b);
    nd_free(&d);
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
        same_bits_without(dev, &c, "nd_prefetch", pf, 0);
    }
}

/* Tails in pieces (nd_tail_pieces, kernels/nd.h) against lane by lane:
 * with nd_narrow 0, the tails of 15 (pieces 8, 4, 2, 1), 6, 13, 10 (past
 * a whole vector) and 3 lanes at VEC 16, each storage in and out, in
 * place, probabilities, weights and smoothing; the kept, cached and
 * one-pass kernels as the shapes choose them. The same bits, and right. */
static void test_tail_pieces_same_bits(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    long long vec = 0, narrow = 0, pieces = 0;
    OK(dev, clxent_context_get_param(dev, "vec", &vec));
    if (vec == 1) {
        printf("test_tail_pieces_same_bits: no vectors on this device\n");
        return;
    }
    OK(dev, clxent_context_get_param(dev, "nd_narrow", &narrow));
    OK(dev, clxent_context_get_param(dev, "nd_tail_pieces", &pieces));
    OK(dev, clxent_context_set_param(dev, "nd_narrow", 0));
    static const shape sh[] = {{2, 21, 15}, {3, 9, 6},  {1, 300, 13},
                               {2, 5, 26},  {4, 3, 3}, {2, 1100, 6}};
    size_t ns = quick() ? 3 : sizeof sh / sizeof *sh;
    for (size_t s = 0; s < ns; ++s) {
        nd_case c = shape_case(sh[s]);
        c.dt = (clxent_dtype)(CLXENT_F32 + s % 3);
        c.odt = (clxent_dtype)(CLXENT_F32 + (s + 1) % 3);
        c.in_place = s % 2 == 0;
        c.probs = s == 3;
        c.weights = s % 3 == 1;
        c.eps = s == 4 ? 0.1f : 0.0f;
        c.red = (clxent_reduction)(s % 3);
        c.seed = 8200 + s;
        same_bits_without(dev, &c, "nd_tail_pieces", 1, 0);
    }
    OK(dev, clxent_context_set_param(dev, "nd_narrow", narrow));
    OK(dev, clxent_context_set_param(dev, "nd_tail_pieces", pieces));
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
    nd_print_device(dev, "test_nd_bits matrix vs nd");
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
        if (bytes[i] != 0x7f)
            fail_msg("interleaved output: byte %zu written", i);
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
        cmocka_unit_test(test_prefetch_same_bits),
        cmocka_unit_test(test_tail_pieces_same_bits),
        cmocka_unit_test(test_bad_label_host),
        cmocka_unit_test(test_interleaved_output_host),
        cmocka_unit_test(test_interleaved_output_device),
        cmocka_unit_test(test_bad_label_device),
        cmocka_unit_test(test_bad_label_device_deferred),
        cmocka_unit_test(test_matrix_vs_nd_host),
        cmocka_unit_test(test_matrix_vs_nd_device),
    };
    return fx_run_tests(tests, argc, argv);
}
