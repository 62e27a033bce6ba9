/* clxent_mpi (clxent_mpi.h) under mpirun (CTest runs it on 4 and 2 ranks,
 * and alone as a 1-rank world): the vocabulary split over the ranks, the
 * rows split over them (some ranks may hold none), both at once on a 2 x 2
 * grid, probability targets; every rank's result must equal the unsharded
 * clxent_cross_entropy_nd, which each rank computes itself (every rank
 * draws the same full data from one seed) on its own context
 * (CLXENT_TEST_DEVICE, default host). A bad class index or argument on one
 * rank fails every rank alike, with nothing written; two runs agree
 * bitwise. Each test makes the same collective calls on every rank, keeps
 * its worst error, and asserts only after an MPI_Allreduce of it, so the
 * ranks pass or fail together and never wait on each other. Links the
 * shared clxent_mpi and clxent (not the static toolkit). */
#if !defined(CLXENT_TEST_MPI)
#include <stdio.h>
int main(void) {
    puts("[  SKIPPED ] test_mpi: clxent was built without MPI");
    return 0;
}
#else
#define _POSIX_C_SOURCE 200809L /* fdopen, dup */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <clxent/clxent_mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tolerance.h"

#define F32 CLXENT_F32
#define SENTINEL (-777.25f)
enum { INJ_NONE, INJ_BAD_TARGET, INJ_BAD_GRAD };
/* What run() changes on this rank for the misuse tests (bits). */
enum {
    T_NO_Z = 1,       /* no z_loss_out */
    T_NO_GRAD = 2,    /* no grad */
    T_DEFERRED = 4,   /* options.target_check = DEFERRED */
    T_OTHER_Y = 8,    /* row 0's class index another one */
    T_II_MIN = 16     /* ignore_index INT64_MIN */
};
static int g_tweak;

static clxent_context *g_ctx;
static int g_rank, g_size;
static FILE *g_log;      /* every rank's own stderr (cmocka: rank 0 only) */
static double g_worst;   /* this rank's worst error / tolerance */
static char g_note[700]; /* and what it was */

static void note(double ratio, const char *fmt, ...) {
    if (!(ratio > g_worst)) return;
    g_worst = ratio;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_note, sizeof g_note, fmt, ap);
    va_end(ap);
}

/* The end of every test: the worst error over all ranks (collective), each
 * failing rank saying why, then the same verdict on every rank. */
static void settle(const char *test) {
    double all = 0.0;
    MPI_Allreduce(&g_worst, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (g_worst > 1.0)
        fprintf(g_log, "test_mpi %s: rank %d of %d: %s\n", test, g_rank,
                g_size, g_note);
    g_worst = 0.0;
    if (all > 1.0)
        fail_msg("%s: worst error over %d ranks %g x the tolerance (stderr "
                 "names the rank)", test, g_size, all);
}
#define SETTLE() settle(__func__)

static void near(const float *got, const float *want, size_t n, double abs_tol,
                 double rel_tol, const char *what, size_t at) {
    for (size_t i = 0; i < n; ++i) {
        double g = got[i], w = want[i];
        double r = !fx_close(g, w, abs_tol, rel_tol) ? INFINITY
                   : isfinite(w) ? fabs(g - w) / (abs_tol + rel_tol * fabs(w))
                                 : 0.0;
        note(r, "%s[%zu]: got %.9g, want %.9g", what, at + i, g, w);
    }
}

/* ---- data: the same on every rank ---- */

static uint64_t g_rng;
static uint64_t next_u64(void) { /* splitmix64 */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float uni(float lo, float hi) {
    return lo + (hi - lo) * (float)((next_u64() >> 40) * 0x1p-24);
}

typedef struct data {
    size_t R, C;
    float *x, *p, *w, *g; /* logits, probabilities (R x C), weights, G */
    int64_t *y;           /* class indices; every 4th row from 1 ignored */
} data;

static data data_make(size_t R, size_t C, uint64_t seed) {
    data d = {R, C, malloc(R * C * 4), malloc(R * C * 4), malloc(C * 4),
              malloc(R * 4 + 4), malloc(R * 8 + 8)};
    if (!d.x || !d.p || !d.w || !d.g || !d.y) abort(); /* never fail alone */
    g_rng = seed;
    for (size_t i = 0; i < R * C; ++i) d.x[i] = uni(-4.0f, 4.0f);
    for (size_t r = 0; r < R; ++r) {
        float s = 0.0f;
        for (size_t c = 0; c < C; ++c) s += d.p[r * C + c] = uni(0.0f, 1.0f);
        for (size_t c = 0; c < C; ++c) d.p[r * C + c] /= s;
    }
    for (size_t c = 0; c < C; ++c) d.w[c] = uni(0.25f, 2.0f);
    for (size_t r = 0; r < R; ++r) d.g[r] = uni(-2.0f, 2.0f);
    for (size_t r = 0; r < R; ++r)
        d.y[r] = r % 4 == 1 ? -100 : (int64_t)(next_u64() % C);
    return d;
}
static void data_free(data *d) {
    free(d->x); free(d->p); free(d->w); free(d->g); free(d->y);
}

/* Part k of n of total, uneven: [cut(k), cut(k + 1)), growing with k. */
static size_t cut(size_t total, int k, int n) {
    return total * (size_t)k * (size_t)(k + 1) / ((size_t)n * (size_t)(n + 1));
}

/* ---- one call, sharded or not ---- */

/* This rank's block: rows [r0, r1) and classes [c0, c1) of the full data. */
typedef struct block {
    MPI_Comm vocab, batch;
    size_t r0, r1, c0, c1;
    int shard; /* pass a clxent_shard (else NULL: all of logits' classes) */
} block;
typedef struct spec {
    clxent_reduction red;
    int probs, weights, grad_rows;
    float eps, zeta;
} spec;
typedef struct out {
    clxent_status st;
    char msg[1200];
    size_t nl, nr, ng; /* loss and z, lse, grad floats */
    float *loss, *lse, *z, *grad;
} out;

/* A buffer holding bytes of src; without src, sentinels (at least one). */
static clxent_buffer *up(const void *src, size_t bytes) {
    clxent_buffer *b = NULL;
    size_t n = bytes ? bytes : 4;
    float *fill = src ? NULL : malloc(n);
    for (size_t i = 0; fill && i < n / 4; ++i) fill[i] = SENTINEL;
    clxent_status st = clxent_buffer_create(g_ctx, n, &b);
    if (!st) st = clxent_buffer_write(g_ctx, b, 0, n, src ? src : fill);
    if (st) note(INFINITY, "buffer of %zu bytes: %s", n, clxent_status_name(st));
    free(fill);
    return b;
}
static float *down(clxent_buffer *b, size_t n) { /* releases b */
    float *h = malloc(n * 4 + 4);
    if (!h) abort();
    clxent_status st = n ? clxent_buffer_read(g_ctx, b, 0, n * 4, h) : 0;
    for (size_t i = 0; st && i < n; ++i) h[i] = NAN;
    if (st) note(INFINITY, "read back: %s", clxent_status_name(st));
    clxent_buffer_release(b);
    return h;
}

static clxent_tensor tensor(clxent_buffer *b, size_t off, size_t outer,
                            size_t classes, size_t outer_stride,
                            clxent_dtype dt) {
    return (clxent_tensor){b, off, outer, classes, 1, outer_stride, 1, 1,
                           dt, 0, {0}};
}

/* ref: the unsharded clxent_cross_entropy_nd on all of d; else this
 * rank's block through clxent_mpi, inject spoiling it on this rank. */
static out run(const data *d, const block *b, const spec *s, int ref,
               int inject) {
    block all = {MPI_COMM_SELF, MPI_COMM_SELF, 0, d->R, 0, d->C, 0};
    if (ref) b = &all;
    size_t R = d->R, C = d->C, rows = b->r1 - b->r0, ck = b->c1 - b->c0;
    int none = s->red == CLXENT_REDUCTION_NONE;
    out o = {CLXENT_STATUS_OK, "", none ? rows : 1, rows, rows * ck,
             NULL, NULL, NULL, NULL};
    int64_t *y = malloc(R * 8 + 8);
    if (!y) abort();
    memcpy(y, d->y, R * 8);
    if (inject == INJ_BAD_TARGET && rows > 0) /* inside this rank's rows */
        y[b->r0 + rows / 2] = (int64_t)C;
    if ((g_tweak & T_OTHER_Y) && rows > 0)
        y[b->r0] = y[b->r0] == 0 ? 1 : 0;
    clxent_buffer *bx = up(d->x, R * C * 4), *bp = up(d->p, R * C * 4),
                  *by = up(y, R * 8), *bw = up(d->w + b->c0, ck * 4),
                  *bg = up(d->g, R * 4), *bl = up(NULL, o.nl * 4),
                  *blse = up(NULL, o.nr * 4), *bz = up(NULL, o.nl * 4),
                  *bgrad = up(NULL, o.ng * 4);
    free(y);
    clxent_options opt;
    clxent_options_init(&opt);
    opt.loss.reduction = s->red;
    opt.loss.label_smoothing = s->eps;
    opt.loss.z_loss = s->zeta;
    if (g_tweak & T_DEFERRED) opt.loss.target_check = CLXENT_CHECK_DEFERRED;
    if (g_tweak & T_II_MIN) opt.loss.ignore_index = INT64_MIN;
    size_t off = b->r0 * C + b->c0;
    clxent_tensor none_t = tensor(NULL, 0, 0, 0, 0, F32);
    clxent_tensor_targets tg = {none_t, none_t};
    if (s->probs) tg.probs = tensor(bp, off, rows, ck, C, F32);
    else tg.indices = tensor(by, b->r0, rows, 1, 1, CLXENT_I64);
    clxent_vector w = {s->weights ? bw : NULL, 0, s->weights ? ck : 0, F32};
    clxent_tensor x = tensor(bx, off, rows, ck, C, F32);
    clxent_tensor gr = tensor(bg, b->r0, rows, 1, 1, F32);
    clxent_tensor loss = tensor(bl, 0, o.nl, 1, 1, F32);
    clxent_tensor lse = tensor(blse, 0, rows, 1, 1, F32);
    clxent_tensor z = tensor(bz, 0, o.nl, 1, 1, F32);
    size_t gk = inject == INJ_BAD_GRAD ? ck - 1 : ck; /* a wrong shape */
    clxent_tensor grad = tensor(bgrad, 0, rows, gk, gk, F32);
    clxent_shard sh = {(int64_t)b->c0, (int64_t)C};
    const clxent_tensor *grp = s->grad_rows && none ? &gr : NULL;
    if (ref)
        o.st = clxent_cross_entropy_nd(g_ctx, &x, &tg, &w, &opt, grp, &loss,
                                       &lse, &z, &grad, NULL);
    else
        o.st = clxent_mpi_cross_entropy_nd(
            g_ctx, b->vocab, b->batch, &x, &tg, &w, b->shard ? &sh : NULL,
            &opt, grp, &loss, &lse, g_tweak & T_NO_Z ? NULL : &z,
            g_tweak & T_NO_GRAD ? NULL : &grad);
    snprintf(o.msg, sizeof o.msg, "%s", clxent_context_message(g_ctx));
    o.loss = down(bl, o.nl);
    o.lse = down(blse, o.nr);
    o.z = down(bz, o.nl);
    o.grad = down(bgrad, o.ng);
    clxent_buffer *in[] = {bx, bp, by, bw, bg};
    for (int k = 0; k < 5; ++k) clxent_buffer_release(in[k]);
    return o;
}
static void out_free(out *o) {
    free(o->loss); free(o->lse); free(o->z); free(o->grad);
}

static void status_is(const out *o, clxent_status want, const char *what) {
    if (o->st != want)
        note(INFINITY, "%s: %s, want %s: %s", what, clxent_status_name(o->st),
             clxent_status_name(want), o->msg);
}

/* This rank's block through clxent_mpi against the unsharded call. */
static void check(const data *d, const block *b, const spec *s,
                  const char *what) {
    out sh = run(d, b, s, 0, INJ_NONE), ref = run(d, b, s, 1, INJ_NONE);
    char w[160];
    size_t rows = b->r1 - b->r0, ck = b->c1 - b->c0;
    size_t at = s->red == CLXENT_REDUCTION_NONE ? b->r0 : 0; /* loss, z */
    status_is(&ref, CLXENT_STATUS_OK, "unsharded");
    status_is(&sh, CLXENT_STATUS_OK, what);
    const float *got[] = {sh.loss, sh.z, sh.lse}, *want[] = {ref.loss + at,
                                                           ref.z + at,
                                                           ref.lse + b->r0};
    for (int k = 0; k < 3; ++k) { /* rel 1e-5 (and 1e-7 for zeros) */
        snprintf(w, sizeof w, "%s %s", what,
                 k == 0 ? "loss" : k == 1 ? "z_loss_out" : "lse");
        near(got[k], want[k], k < 2 ? sh.nl : rows, 1e-7, 1e-5, w,
             k < 2 ? at : b->r0);
    }
    for (size_t r = 0; r < rows; ++r) {
        snprintf(w, sizeof w, "%s grad row %zu, class", what, b->r0 + r);
        near(sh.grad + r * ck, ref.grad + (b->r0 + r) * d->C + b->c0, ck,
             1e-5, 0.0, w, b->c0);
    }
    out_free(&sh);
    out_free(&ref);
}

static const spec k_specs[] = {
    {CLXENT_REDUCTION_MEAN, 0, 1, 0, 0.1f, 1e-3f},
    {CLXENT_REDUCTION_SUM, 0, 1, 0, 0.1f, 1e-3f},
    {CLXENT_REDUCTION_NONE, 0, 1, 1, 0.1f, 1e-3f},
    {CLXENT_REDUCTION_MEAN, 0, 0, 0, 0.0f, 0.0f},
};
enum { N_SPECS = sizeof k_specs / sizeof k_specs[0] };

static block vocab_block(size_t R, size_t C) { /* classes split */
    return (block){MPI_COMM_WORLD, MPI_COMM_SELF, 0, R, cut(C, g_rank, g_size),
                   cut(C, g_rank + 1, g_size), 1};
}
static block batch_block(size_t R, size_t C) { /* rows split, shard NULL */
    return (block){MPI_COMM_SELF, MPI_COMM_WORLD, cut(R, g_rank, g_size),
                   cut(R, g_rank + 1, g_size), 0, C, 0};
}

/* Every spec of s (n of them) on this rank's block b. */
static void check_specs(const data *d, const block *b, const spec *s, int n,
                        const char *what) {
    for (int i = 0; i < n; ++i) {
        char w[96];
        snprintf(w, sizeof w, "%s, spec %d", what, i);
        check(d, b, &s[i], w);
    }
}
static const spec k_probs[] = {
    {CLXENT_REDUCTION_MEAN, 1, 1, 0, 0.1f, 1e-3f},
    {CLXENT_REDUCTION_SUM, 1, 0, 0, 0.2f, 0.0f},
    {CLXENT_REDUCTION_NONE, 1, 1, 1, 0.1f, 1e-3f},
};

/* ---- the tests ---- */

/* 1. Vocabulary parallel: C = 50 split unevenly, R = 9. */
static void vocab_parallel(void **state) {
    (void)state;
    data d = data_make(9, 50, 11);
    block b = vocab_block(d.R, d.C);
    check_specs(&d, &b, k_specs, N_SPECS, "vocab");
    data_free(&d);
    SETTLE();
}

/* 2. Data parallel: rows split unevenly (R = 3, 2, 1: some ranks get
 * none; on 4 ranks with R = 2 one holds only an ignored row); the mean
 * over the global W; then every row ignored (W = 0 everywhere). */
static void data_parallel(void **state) {
    (void)state;
    static const size_t rows[] = {9, 3, 2, 1};
    for (int k = 0; k < 5; ++k) {
        data d = data_make(rows[k % 4], 50, 22 + (uint64_t)k);
        block b = batch_block(d.R, d.C);
        char w[48];
        for (size_t r = 0; k == 4 && r < d.R; ++r) d.y[r] = -100;
        snprintf(w, sizeof w, "batch R=%zu%s", d.R, k == 4 ? " ignored" : "");
        check_specs(&d, &b, k_specs, N_SPECS, w);
        data_free(&d);
    }
    SETTLE();
}

/* 3. Both, on a 2 x 2 grid: vocab = the ranks of one row block, batch =
 * the ranks of one class block. */
static void grid_2x2(void **state) {
    (void)state;
    if (g_size != 4) {
        if (g_rank == 0) printf("grid_2x2: needs 4 ranks, have %d\n", g_size);
        return;
    }
    int rb = g_rank / 2, cb = g_rank % 2;
    MPI_Comm vocab, batch;
    MPI_Comm_split(MPI_COMM_WORLD, rb, g_rank, &vocab);
    MPI_Comm_split(MPI_COMM_WORLD, cb, g_rank, &batch);
    data d = data_make(9, 50, 33);
    block b = {vocab, batch, cut(d.R, rb, 2), cut(d.R, rb + 1, 2),
               cut(d.C, cb, 2), cut(d.C, cb + 1, 2), 1};
    check_specs(&d, &b, k_specs, N_SPECS, "grid");
    check_specs(&d, &b, k_probs, 3, "grid probs");
    data_free(&d);
    MPI_Comm_free(&vocab);
    MPI_Comm_free(&batch);
    SETTLE();
}

/* 4. Probability targets (the shard's columns), label smoothing over the
 * global C, vocabulary parallel; also split by rows. */
static void probs_vocab_parallel(void **state) {
    (void)state;
    data d = data_make(9, 50, 44);
    block bv = vocab_block(d.R, d.C), bb = batch_block(d.R, d.C);
    check_specs(&d, &bv, k_probs, 3, "probs vocab");
    check_specs(&d, &bb, k_probs, 3, "probs batch");
    data_free(&d);
    SETTLE();
}

/* 5. One rank's bad class index or argument fails every rank alike, with
 * nothing written (every output keeps its sentinel), the others' message
 * naming the rank; the ranks stay in step (a good call afterwards still
 * agrees); a class index of another rank's shard is fine. */
static void error_agreement(void **state) {
    (void)state;
    if (g_size < 2) {
        if (g_rank == 0) printf("error_agreement: needs 2 ranks or more\n");
        return;
    }
    static const clxent_status want[] = {
        0, CLXENT_STATUS_TARGET_OUT_OF_RANGE, CLXENT_STATUS_INVALID_SHAPE};
    data d = data_make(9, 50, 55);
    int bad = g_size - 1;
    char who[32], w[96];
    snprintf(who, sizeof who, "rank %d", bad);
    for (int mode = 0; mode < 2; ++mode) {
        block b = mode ? batch_block(d.R, d.C) : vocab_block(d.R, d.C);
        for (int inj = INJ_BAD_TARGET; inj <= INJ_BAD_GRAD; ++inj)
            for (int i = 0; i < 3; ++i) {
                snprintf(w, sizeof w, "%s, %s on rank %d, spec %d",
                         mode ? "batch" : "vocab",
                         inj == INJ_BAD_GRAD ? "grad shape" : "target", bad, i);
                out o = run(&d, &b, &k_specs[i], 0, g_rank == bad ? inj : 0);
                status_is(&o, want[inj], w);
                const float *a[] = {o.loss, o.lse, o.z, o.grad};
                size_t n[] = {o.nl, o.nr, o.nl, o.ng};
                for (int k = 0; k < 4; ++k)
                    for (size_t j = 0; j < n[k]; ++j)
                        if (memcmp(&a[k][j], &(float){SENTINEL}, 4) != 0)
                            note(INFINITY, "%s: output %d [%zu] written (%g)",
                                 w, k, j, a[k][j]);
                if (g_rank != bad &&
                    (!strstr(o.msg, "rank") || !strstr(o.msg, who)))
                    note(INFINITY, "%s: message lacks \"%s\": %s", w, who,
                         o.msg);
                out_free(&o);
            }
        check(&d, &b, &k_specs[0], mode ? "batch after errors"
                                        : "vocab after errors");
    }
    /* every target in rank 0's shard: the others hold only foreign ones */
    for (size_t r = 0; r < d.R; ++r)
        if (d.y[r] != -100) d.y[r] = (int64_t)(r % 3);
    block b = vocab_block(d.R, d.C);
    check_specs(&d, &b, k_specs, 3, "foreign targets");
    data_free(&d);
    SETTLE();
}

/* 5b. Ranks that disagree on what must match (the vocabulary ranks' rows,
 * every rank's reduction) fail alike with INVALID_ARGUMENT, instead of
 * mismatched collectives (an abort) or one rank waiting in a collective
 * the others skip (a hang). */
static void disagreement(void **state) {
    (void)state;
    if (g_size < 2) {
        if (g_rank == 0) printf("disagreement: needs 2 ranks or more\n");
        return;
    }
    data d = data_make(9, 50, 77);
    int bad = g_size - 1;
    static const char *what[] = {"a vocabulary rank's rows differ",
                                 "a rank's reduction differs",
                                 "two ranks hold a class, none the last"};
    static const char *word[] = {"rows", "reduction", "holds"};
    for (int mode = 0; mode < 3; ++mode) {
        block b = vocab_block(d.R, d.C);
        spec sp = k_specs[0];
        if (g_rank == bad && mode == 0) b.r1 -= 1; /* one row fewer */
        if (g_rank == bad && mode == 1)
            sp.red = sp.red == CLXENT_REDUCTION_SUM ? CLXENT_REDUCTION_MEAN
                                                    : CLXENT_REDUCTION_SUM;
        if (g_rank == bad && mode == 2) { /* as many classes, one over */
            b.c0 -= 1;
            b.c1 -= 1;
        }
        out o = run(&d, &b, &sp, 0, INJ_NONE);
        status_is(&o, CLXENT_STATUS_INVALID_ARGUMENT, what[mode]);
        if (!strstr(o.msg, word[mode]))
            note(INFINITY, "%s: message: %s", what[mode], o.msg);
        out_free(&o);
    }
    block b = vocab_block(d.R, d.C);
    check(&d, &b, &k_specs[0], "vocab after disagreements");
    data_free(&d);
    SETTLE();
}

/* 5c. Misuse that used to hang or give wrong results with OK: one rank
 * without z_loss_out or grad (the others waited in a collective), other
 * class indices or ignore_index INT64_MIN on one vocabulary rank, the
 * same communicator as vocab and batch, batch communicators of different
 * sizes, a mean whose global W is negative (each rank divided by its
 * own), a deferred check (only the finding rank learnt of the bad row).
 * Every rank fails alike, nothing written. */
static void misuse(void **state) {
    (void)state;
    if (g_size < 2) {
        if (g_rank == 0) printf("misuse: needs 2 ranks or more\n");
        return;
    }
    data d = data_make(9, 50, 88);
    int bad = g_size - 1;
    static const struct {
        int tweak, all;
        clxent_status want;
        const char *word;
    } cases[] = {
        {T_NO_Z, 0, CLXENT_STATUS_INVALID_ARGUMENT, "z_loss_out"},
        {T_NO_GRAD, 0, CLXENT_STATUS_INVALID_ARGUMENT, "grad"},
        {T_OTHER_Y, 0, CLXENT_STATUS_INVALID_ARGUMENT, "class indices"},
        {T_II_MIN, 0, CLXENT_STATUS_INVALID_ARGUMENT, "ignore_index"},
        {T_DEFERRED, 1, CLXENT_STATUS_TARGET_OUT_OF_RANGE, "targets"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; ++k) {
        block b = vocab_block(d.R, d.C);
        g_tweak = cases[k].all || g_rank == bad ? cases[k].tweak : 0;
        int inject = cases[k].tweak == T_DEFERRED && g_rank == bad
                         ? INJ_BAD_TARGET : INJ_NONE;
        int64_t keep[16]; /* INT64_MIN: no row ignored, none out of range */
        for (size_t r = 0; r < d.R && r < 16; ++r) {
            keep[r] = d.y[r];
            if (cases[k].tweak == T_II_MIN && d.y[r] < 0) d.y[r] = 0;
        }
        out o = run(&d, &b, &k_specs[0], 0, inject);
        memcpy(d.y, keep, (d.R < 16 ? d.R : 16) * sizeof *keep);
        g_tweak = 0;
        status_is(&o, cases[k].want, cases[k].word);
        if (!strstr(o.msg, cases[k].word))
            note(INFINITY, "%s: message: %s", cases[k].word, o.msg);
        for (size_t j = 0; j < o.nl; ++j)
            if (memcmp(&o.loss[j], &(float){SENTINEL}, 4) != 0)
                note(INFINITY, "%s: loss written", cases[k].word);
        out_free(&o);
    }
    /* one communicator as both */
    block same = {MPI_COMM_WORLD, MPI_COMM_WORLD, 0, d.R, 0, d.C, 0};
    out o = run(&d, &same, &k_specs[0], 0, INJ_NONE);
    status_is(&o, CLXENT_STATUS_INVALID_ARGUMENT, "vocab == batch");
    out_free(&o);
    /* a negative global W: every weight -1 */
    for (size_t c = 0; c < d.C; ++c) d.w[c] = -1.0f;
    for (int mode = 0; mode < 2; ++mode) {
        block b = mode ? batch_block(d.R, d.C) : vocab_block(d.R, d.C);
        o = run(&d, &b, &k_specs[0], 0, INJ_NONE);
        status_is(&o, CLXENT_STATUS_INVALID_ARGUMENT, "negative W");
        if (!strstr(o.msg, "normalizer"))
            note(INFINITY, "negative W: message: %s", o.msg);
        out_free(&o);
    }
    if (g_size == 4) { /* batch sizes 2 and 1 among vocabulary peers */
        int rb = g_rank / 2, cb = g_rank % 2;
        MPI_Comm vocab, batch;
        MPI_Comm_split(MPI_COMM_WORLD, rb, g_rank, &vocab);
        MPI_Comm_split(MPI_COMM_WORLD, cb, g_rank, &batch);
        block b = {vocab, cb ? MPI_COMM_SELF : batch, 0, d.R,
                   cut(d.C, cb, 2), cut(d.C, cb + 1, 2), 1};
        d.w[0] = 1.0f;
        o = run(&d, &b, &k_specs[1], 0, INJ_NONE);
        status_is(&o, CLXENT_STATUS_INVALID_ARGUMENT, "batch sizes");
        if (!strstr(o.msg, "batch communicators"))
            note(INFINITY, "batch sizes: message: %s", o.msg);
        out_free(&o);
        MPI_Comm_free(&vocab);
        MPI_Comm_free(&batch);
    }
    data_free(&d);
    SETTLE();
}

/* 6. Two runs give the same bits. */
static void determinism(void **state) {
    (void)state;
    data d = data_make(9, 50, 66);
    block bs[] = {vocab_block(d.R, d.C), batch_block(d.R, d.C)};
    for (int k = 0; k < 2; ++k)
        for (int i = 0; i < 3; ++i) {
            out a = run(&d, &bs[k], &k_specs[i], 0, INJ_NONE),
                b = run(&d, &bs[k], &k_specs[i], 0, INJ_NONE);
            status_is(&a, CLXENT_STATUS_OK, "determinism, first run");
            status_is(&b, CLXENT_STATUS_OK, "determinism, second run");
            if (memcmp(a.loss, b.loss, a.nl * 4) || memcmp(a.z, b.z, a.nl * 4)
                || memcmp(a.lse, b.lse, a.nr * 4)
                || memcmp(a.grad, b.grad, a.ng * 4))
                note(INFINITY, "%s spec %d: two runs differ",
                     k ? "batch" : "vocab", i);
            out_free(&a);
            out_free(&b);
        }
    data_free(&d);
    SETTLE();
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (!(g_log = fdopen(dup(2), "w"))) g_log = stderr;
    setvbuf(g_log, NULL, _IOLBF, 0);
    if (g_rank != 0 && (!freopen("/dev/null", "w", stdout) ||
                        !freopen("/dev/null", "w", stderr))) /* cmocka's */
        fprintf(g_log, "rank %d: cannot silence cmocka\n", g_rank);
    const char *spec = getenv("CLXENT_TEST_DEVICE");
    if (!spec || !*spec) spec = "host";
    clxent_status st = clxent_context_create(spec, &g_ctx);
    int ok = st == CLXENT_STATUS_OK, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        const char *req = getenv("CLXENT_REQUIRE_DEVICE");
        int fail = strcmp(spec, "host") == 0 || (req && !strcmp(req, "1"));
        if (!ok)
            fprintf(g_log, "rank %d: no context on %s: %s\n", g_rank, spec,
                    clxent_context_message(g_ctx));
        if (g_rank == 0 && !fail)
            printf("[  SKIPPED ] test_mpi: no context on %s\n", spec);
        clxent_context_destroy(g_ctx);
        MPI_Finalize();
        return fail;
    }
    clxent_device_info info;
    if (g_rank == 0 && clxent_context_info(g_ctx, &info) == CLXENT_STATUS_OK)
        printf("test_mpi: %d ranks, each on %s (%s)\n", g_size, spec,
               info.name);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vocab_parallel),
        cmocka_unit_test(data_parallel),
        cmocka_unit_test(grid_2x2),
        cmocka_unit_test(probs_vocab_parallel),
        cmocka_unit_test(error_agreement),
        cmocka_unit_test(disagreement),
        cmocka_unit_test(misuse),
        cmocka_unit_test(determinism),
    };
    int failed = cmocka_run_group_tests_name("mpi", tests, NULL, NULL);
    clxent_context_destroy(g_ctx);
    MPI_Finalize();
    return failed ? 1 : 0;
}
#endif
