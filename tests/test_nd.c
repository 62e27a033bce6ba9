/* The tensor calls (clxent.h, "Tensors with the class axis anywhere") on
 * the OpenCL device against the host reference on the same inputs: every
 * _nd operation over a grid of (outer, classes, inner) shapes, strided,
 * offset, transposed and permuted layouts of the logits and outputs,
 * strided and transposed per-row arrays, and the options (targets, weights,
 * ignore_index, smoothing, z-loss with z_loss_out, softcap, logit_scale,
 * reductions, grad_rows, in place). Every output's bytes outside its
 * elements must be left alone. The cases and their runs are
 * common/nd_harness.c's; test_nd_bits.c checks the same calls bit for bit
 * and their refusals.
 *
 * CLXENT_ND_QUICK=1 runs a few small shapes only (the Oclgrind pass,
 * tests/oclgrind_nd.sh). */
#include "contract.h" /* CLX_ND_BLOCK */
#include "nd_harness.h"

/* ---- one case on the device ---- */

/* The case on inputs d, the device against the host; returns the
 * device's results (the caller frees them). */
static nd_res run_data(clxent_context *dev, const nd_case *c,
                       const nd_data *d, const char *name) {
    nd_res ref = run_all(fx_host(), c, d, NULL, name);
    nd_res got = run_all(dev, c, d, &ref, name);
    compare_case(c, &got, &ref, name);
    res_free(&ref);
    return got;
}

/* The case on the device against the host; traces (if not NULL) gets
 * the rows the operations took (no outputs), and name the case's name. */
static void run_case_traced(clxent_context *dev, const nd_case *c,
                            nd_res *traces, char *name, size_t size) {
    nd_name(c, name, size);
    nd_data d = nd_make(c);
    nd_res got = run_data(dev, c, &d, name);
    res_free(&got);
    if (traces) *traces = got; /* the traces, no outputs */
    nd_free(&d);
}

static void run_case(clxent_context *dev, const nd_case *c) {
    char name[384];
    run_case_traced(dev, c, NULL, name, sizeof name);
}

/* ---- the grid ---- */

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

static void test_grid(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    nd_print_device(dev, "test_nd grid");
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

/* An ignore_index outside int32's range with int32 labels matches no
 * label (semantics: the comparison is in 64 bits): 2^32 + 1 must not skip
 * the label 1 (the harness's would-be ignored labels, stored in int32),
 * in whole vectors, tails and one inner position; with int64 labels the
 * same value does skip. */
static void test_ignore_index_range(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const shape sh[] = {{2, 21, 16}, {2, 21, 20}, {5, 9, 1},
                               {1, 300, 32}};
    for (size_t s = 0; s < sizeof sh / sizeof *sh; ++s)
        for (int wide = 0; wide < 2; ++wide) {
            nd_case c = shape_case(sh[s]);
            c.ignore = 1;
            c.ii = ((int64_t)1 << 32) + 1;
            c.idt = wide ? CLXENT_I64 : CLXENT_I32;
            c.weights = s % 2 == 1;
            c.red = CLXENT_REDUCTION_MEAN;
            c.seed = 9100 + 2 * s + (uint64_t)wide;
            run_case(dev, &c);
        }
}

/* grad_rows that are NaN or inf at ignored rows (every third): an ignored
 * row's gradient is exactly 0 whatever its upstream gradient (PyTorch's
 * nll_loss skips the row; the host's reference never multiplies it), in
 * whole vectors, tails and the kept, cached and one-pass kernels. */
static void test_ignored_grad_rows(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const shape sh[] = {{2, 21, 16}, {2, 21, 20}, {3, 9, 6},
                               {5, 9, 1},   {1, 300, 32}};
    for (size_t s = 0; s < sizeof sh / sizeof *sh; ++s)
        for (int v = 0; v < 2; ++v) {
            nd_case c = shape_case(sh[s]);
            c.ignore = 1;
            c.grad_rows = 1;
            c.red = CLXENT_REDUCTION_NONE;
            c.idt = v ? CLXENT_I64 : CLXENT_I32;
            c.weights = v;
            c.seed = 9200 + 2 * s + (uint64_t)v;
            char name[384];
            nd_name(&c, name, sizeof name);
            nd_data d = nd_make(&c);
            for (size_t r = 0, n = 0; r < n_rows(&c); ++r) {
                if (r % 3 == 1) d.y[r] = c.ii;
                if (d.y[r] == c.ii) d.gr[r] = n++ % 2 ? INFINITY : NAN;
            }
            nd_res got = run_data(dev, &c, &d, name);
            res_free(&got);
            nd_free(&d);
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
                c.in_place = v == 1; /* the chunked rows read the target
                                      * logit before their exps overwrite it */
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
                if (c.in_place)
                    rel_compare(got.v[O_IPG], ref.v[O_IPG], N, o_name[O_IPG],
                                name);
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
    nd_res got = run_data(dev, c, &d, name);
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
 * inner positions (at VEC 16 and nd_unroll 4: inner 100 in items of 2
 * vectors, 48 of 1, 200 of 4; 40 of 2, or with tails lane by lane
 * narrowed to VEC 8, of 1), in fused,
 * backward and softmax, and fused inner extents below nd_kept_imin to
 * nd_cached, unless they are whole vectors (8, with nd_narrow); the
 * results against the host's either way. */
static void test_kept_items(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    long long imin = 0, vec = 0, unroll = 0, kcmax = 0, wcmin = 0;
    long long narrow = 0, pieces = 0;
    OK(dev, clxent_context_get_param(dev, "nd_kept_imin", &imin));
    OK(dev, clxent_context_get_param(dev, "nd_tail_pieces", &pieces));
    OK(dev, clxent_context_get_param(dev, "nd_narrow", &narrow));
    OK(dev, clxent_context_get_param(dev, "vec", &vec));
    OK(dev, clxent_context_get_param(dev, "nd_unroll", &unroll));
    OK(dev, clxent_context_get_param(dev, "nd_kept_cmax", &kcmax));
    OK(dev, clxent_context_get_param(dev, "nd_wide_cmin", &wcmin));
    static const struct {
        size_t I;
        long long imin;
        const char *fused; /* the fused row */
        unsigned ndu[2];   /* the kept rows' unroll, by nd_tail_pieces */
    } k[] = {{6, 0, "(nd_kept ", {1, 1}},     {6, 16, "(nd_cached ", {1, 1}},
             {8, 16, "(nd_kept ", {1, 1}},    {40, 0, "(nd_kept ", {1, 2}},
             {48, 16, "(nd_kept ", {1, 1}},   {100, 16, "(nd_kept ", {2, 2}},
             {200, 0, "(nd_kept ", {4, 4}}};
    int check = vec == 16 && unroll == 4 && kcmax >= 21 && wcmin >= 21 &&
                narrow == 1;
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
        unsigned want_ndu = k[i].ndu[pieces != 0];
        snprintf(ndu, sizeof ndu, " NDU=%u)", want_ndu);
        const char *want[3] = {k[i].fused, "(nd_kept ", "(nd_kept "};
        const char *got[3] = {t.trace_fused, t.trace_bwd, t.trace_sm};
        for (int op = 0; check && op < 3; ++op) {
            const char *at = strstr(got[op], want[op]);
            int kept = strcmp(want[op], "(nd_kept ") == 0;
            if (!at || (kept && !strstr(at, ndu)))
                fail_msg("%s: took %s, want %s NDU %u", name, got[op],
                         want[op], want_ndu);
        }
    }
    OK(dev, clxent_context_set_param(dev, "nd_kept_imin", imin));
}

/* Narrowed vectors (nd_narrow, clx_nd_vec): at VEC 16 the N-d kernels
 * take VEC 4 at inner extents up to 4, 8 at 5..8, and with tails lane by
 * lane (nd_tail_pieces 0) also 4 at 12 and 8 at 24; 16 where narrower
 * vectors would not cost less (9, 20), in every storage; with nd_narrow
 * 0, and on other mappings, the device's. The results against the
 * host's either way. */
static void test_narrow_vectors(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    long long narrow = 0, vec = 0, pieces = 0;
    OK(dev, clxent_context_get_param(dev, "nd_narrow", &narrow));
    OK(dev, clxent_context_get_param(dev, "vec", &vec));
    OK(dev, clxent_context_get_param(dev, "nd_tail_pieces", &pieces));
    static const struct {
        size_t I;
        long long vec[2]; /* with nd_narrow 1 at VEC 16, by pieces */
    } k[] = {{3, {4, 4}},   {5, {8, 8}},   {9, {16, 16}}, {12, {4, 16}},
             {24, {8, 16}}, {20, {16, 16}}, {4, {4, 4}},  {8, {8, 8}}};
    size_t nk = quick() ? 2 : sizeof k / sizeof *k;
    for (int on = 0; on < 2; ++on) {
        OK(dev, clxent_context_set_param(dev, "nd_narrow", on));
        for (size_t i = 0; i < nk; ++i) {
            nd_case c = shape_case((shape){3, 21, k[i].I});
            c.dt = (clxent_dtype)(CLXENT_F32 + i % 3);
            c.seed = 8400 + 10 * (uint64_t)on + i;
            char name[384], want[24];
            nd_res t;
            run_case_traced(dev, &c, &t, name, sizeof name);
            snprintf(want, sizeof want, " VEC=%lld ",
                     on && vec == 16 ? k[i].vec[pieces != 0] : vec);
            const char *got[4] = {t.trace_fwd, t.trace_fused, t.trace_bwd,
                                  t.trace_sm};
            for (int op = 0; op < 4; ++op)
                if (!strstr(got[op], want))
                    fail_msg("%s: took %s, want%s", name, got[op], want);
        }
    }
    OK(dev, clxent_context_set_param(dev, "nd_narrow", narrow));
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

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_rows),
        cmocka_unit_test(test_kept_paths),
        cmocka_unit_test(test_kept_items),
        cmocka_unit_test(test_narrow_vectors),
        cmocka_unit_test(test_wide_rows),
        cmocka_unit_test(test_options_one_by_one),
        cmocka_unit_test(test_ignore_index_range),
        cmocka_unit_test(test_ignored_grad_rows),
        cmocka_unit_test(test_broadcast_inputs),
        cmocka_unit_test(test_ieee),
        cmocka_unit_test(test_grid),
    };
    return fx_run_tests(tests, argc, argv);
}
