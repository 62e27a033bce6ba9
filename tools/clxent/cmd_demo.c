/* clxent demo: the seed article (PyTorch's softmax cross-entropy and its
 * gradient on x = three rows of [1, 2, 3]) recomputed step by step on the
 * chosen device and on the host reference backend. */
#include "commands.h"

#include <math.h>
#include <string.h>

static const char *cmd = "demo";

/* The article's numbers, 4 decimals: a value agrees within 5e-5. */
#define ARTICLE_TOL 5e-5
static const float article_softmax[3] = {0.0900f, 0.2447f, 0.6652f};
static const float article_logsm[3] = {-2.4076f, -1.4076f, -0.4076f};
static const float article_row_loss[3] = {2.4076f, 1.4076f, 0.4076f};
static const float article_loss = 1.4076f;
static const float article_grad[9] = {0.0300f, 0.0816f,  -0.1116f,
                                      0.0300f, -0.2518f, 0.2217f,
                                      -0.3033f, 0.0816f, 0.2217f};

typedef struct demo_values {
    float softmax[9], logsm[9];
    float row_loss[3];                  /* targets 0, 1, 2, reduction none */
    float loss_probs, loss_nll, loss_ce; /* mean, targets 2, 1, 0 */
    float grad_backward[9], grad_fused[9];
} demo_values;

#define N_VALUES (sizeof(demo_values) / sizeof(float))

static void help(void) {
    printf("Usage: clxent demo [--device SPEC]\n\n"
           "Walks through softmax cross-entropy on the example of the seed\n"
           "article (PyTorch F.softmax / F.log_softmax / NLLLoss /\n"
           "CrossEntropyLoss) on the chosen device and on the host reference\n"
           "backend. Exits 1 if a value differs from the article by more\n"
           "than %.0e.\n", ARTICLE_TOL);
}

typedef struct demo_buffers {
    clxent_buffer *x, *probs, *idx, *idx_rows, *out, *logsm, *loss, *lse,
        *grad;
} demo_buffers;

static clxent_status upload(clxent_context *ctx, const void *data,
                            size_t bytes, clxent_buffer **buf) {
    clxent_status st = clxent_buffer_create(ctx, bytes, buf);
    if (st == CLXENT_STATUS_OK && data)
        st = clxent_buffer_write(ctx, *buf, 0, bytes, data);
    return st;
}

#define STEP(call, name)                                                       \
    do {                                                                       \
        st = (call);                                                           \
        if (st != CLXENT_STATUS_OK) { *what = (name); goto done; }             \
    } while (0)

/* Every value of the walk-through on one context. */
static clxent_status demo_compute(clxent_context *ctx, demo_values *v,
                                  const char **what) {
    static const float x[9] = {1, 2, 3, 1, 2, 3, 1, 2, 3};
    static const float onehot[9] = {0, 0, 1, 0, 1, 0, 1, 0, 0};
    static const int32_t idx[3] = {2, 1, 0}, idx_rows[3] = {0, 1, 2};
    demo_buffers b;
    memset(&b, 0, sizeof b);
    clxent_status st;
    STEP(upload(ctx, x, sizeof x, &b.x), "uploading logits");
    STEP(upload(ctx, onehot, sizeof onehot, &b.probs), "uploading labels");
    STEP(upload(ctx, idx, sizeof idx, &b.idx), "uploading labels");
    STEP(upload(ctx, idx_rows, sizeof idx_rows, &b.idx_rows),
         "uploading labels");
    STEP(upload(ctx, NULL, 9 * sizeof(float), &b.out), "allocating");
    STEP(upload(ctx, NULL, 9 * sizeof(float), &b.logsm), "allocating");
    STEP(upload(ctx, NULL, 3 * sizeof(float), &b.loss), "allocating");
    STEP(upload(ctx, NULL, 3 * sizeof(float), &b.lse), "allocating");
    STEP(upload(ctx, NULL, 9 * sizeof(float), &b.grad), "allocating");

    clxent_matrix mx = clxent_matrix_of(b.x, 3, 3, CLXENT_F32);
    clxent_matrix mout = clxent_matrix_of(b.out, 3, 3, CLXENT_F32);
    clxent_matrix mlogsm = clxent_matrix_of(b.logsm, 3, 3, CLXENT_F32);
    clxent_matrix mgrad = clxent_matrix_of(b.grad, 3, 3, CLXENT_F32);
    clxent_vector loss1 = clxent_vector_of(b.loss, 1, CLXENT_F32);
    clxent_vector loss3 = clxent_vector_of(b.loss, 3, CLXENT_F32);
    clxent_vector lse = clxent_vector_of(b.lse, 3, CLXENT_F32);
    clxent_vector vidx = clxent_vector_of(b.idx, 3, CLXENT_I32);
    clxent_vector no_vec = {0};
    clxent_targets t_idx = {vidx, {0}};
    clxent_targets t_rows = {clxent_vector_of(b.idx_rows, 3, CLXENT_I32), {0}};
    clxent_targets t_probs = {{0}, clxent_matrix_of(b.probs, 3, 3, CLXENT_F32)};
    clxent_loss_options mean = CLXENT_LOSS_OPTIONS_INIT;
    clxent_loss_options none = CLXENT_LOSS_OPTIONS_INIT;
    none.reduction = CLXENT_REDUCTION_NONE;

    STEP(clxent_softmax(ctx, &mx, &mout, NULL), "clxent_softmax");
    STEP(clxent_buffer_read(ctx, b.out, 0, sizeof v->softmax, v->softmax),
         "reading softmax");
    STEP(clxent_log_softmax(ctx, &mx, &mlogsm, NULL), "clxent_log_softmax");
    STEP(clxent_buffer_read(ctx, b.logsm, 0, sizeof v->logsm, v->logsm),
         "reading log_softmax");
    STEP(clxent_cross_entropy_forward(ctx, &mx, &t_rows, &no_vec, &none,
                                      &loss3, &no_vec, NULL),
         "clxent_cross_entropy_forward (reduction none)");
    STEP(clxent_buffer_read(ctx, b.loss, 0, sizeof v->row_loss, v->row_loss),
         "reading row losses");
    STEP(clxent_cross_entropy_forward(ctx, &mx, &t_probs, &no_vec, &mean,
                                      &loss1, &no_vec, NULL),
         "clxent_cross_entropy_forward (probabilities)");
    STEP(clxent_buffer_read(ctx, b.loss, 0, 4, &v->loss_probs), "reading loss");
    STEP(clxent_nll_loss(ctx, &mlogsm, &vidx, &no_vec, &mean, &loss1, NULL),
         "clxent_nll_loss");
    STEP(clxent_buffer_read(ctx, b.loss, 0, 4, &v->loss_nll), "reading loss");
    STEP(clxent_cross_entropy_forward(ctx, &mx, &t_idx, &no_vec, &mean, &loss1,
                                      &lse, NULL),
         "clxent_cross_entropy_forward (class indices)");
    STEP(clxent_buffer_read(ctx, b.loss, 0, 4, &v->loss_ce), "reading loss");
    STEP(clxent_cross_entropy_backward(ctx, &mx, &t_idx, &no_vec, &mean, &lse,
                                       &no_vec, &mgrad, NULL),
         "clxent_cross_entropy_backward");
    STEP(clxent_buffer_read(ctx, b.grad, 0, sizeof v->grad_backward,
                            v->grad_backward),
         "reading gradient");
    STEP(clxent_cross_entropy(ctx, &mx, &t_idx, &no_vec, &mean, &no_vec,
                              &loss1, &no_vec, &mgrad, NULL),
         "clxent_cross_entropy (fused)");
    STEP(clxent_buffer_read(ctx, b.grad, 0, sizeof v->grad_fused,
                            v->grad_fused),
         "reading gradient");
    STEP(clxent_finish(ctx), "clxent_finish");
done:
    clxent_buffer_release(b.x);
    clxent_buffer_release(b.probs);
    clxent_buffer_release(b.idx);
    clxent_buffer_release(b.idx_rows);
    clxent_buffer_release(b.out);
    clxent_buffer_release(b.logsm);
    clxent_buffer_release(b.loss);
    clxent_buffer_release(b.lse);
    clxent_buffer_release(b.grad);
    return st;
}

static int off(float got, float want) {
    return !(fabs((double)got - (double)want) <= ARTICLE_TOL);
}

/* How many values of v disagree with the article (NaN disagrees). */
static int count_mismatches(const demo_values *v) {
    int n = 0;
    for (int i = 0; i < 9; i++)
        n += off(v->softmax[i], article_softmax[i % 3]) +
             off(v->logsm[i], article_logsm[i % 3]) +
             off(v->grad_backward[i], article_grad[i]) +
             off(v->grad_fused[i], article_grad[i]);
    for (int i = 0; i < 3; i++) n += off(v->row_loss[i], article_row_loss[i]);
    return n + off(v->loss_probs, article_loss) +
           off(v->loss_nll, article_loss) + off(v->loss_ce, article_loss);
}

/* Prints a value, marked *like this* when it disagrees with the article. */
static void show(float got, float want) {
    int bad = off(got, want);
    printf(bad ? "*% .4f*" : "% .4f", got);
}

static void show_row(const float *got, const float *want) {
    printf("[");
    for (int c = 0; c < 3; c++) {
        show(got[c], want[c]);
        printf(c < 2 ? ", " : "]");
    }
}

static void print_walkthrough(const demo_values *v) {
    printf("\n1. Logits and labels. Three samples, three classes; every row "
           "of logits is\n   [1, 2, 3]. The labels as one-hot rows "
           "(probabilities) and as class indices:\n"
           "     row 0: [0, 0, 1] -> class 2\n"
           "     row 1: [0, 1, 0] -> class 1\n"
           "     row 2: [1, 0, 0] -> class 0\n");
    printf("\n2. Softmax turns logits into probabilities, exp(x) / "
           "sum(exp(x)):\n     softmax([1, 2, 3])     = ");
    show_row(v->softmax, article_softmax);
    printf("\n\n3. Log-softmax is its logarithm, computed stably as x - "
           "logsumexp(x):\n     log_softmax([1, 2, 3]) = ");
    show_row(v->logsm, article_logsm);
    printf("\n\n4. The loss of one row is -log_softmax at the target class; "
           "it grows as the\n   target gets less likely:\n");
    for (int r = 0; r < 3; r++) {
        printf("     target %d: loss ", r);
        show(v->row_loss[r], article_row_loss[r]);
        printf("\n");
    }
    printf("\n5. The batch loss is the mean over the rows. Three routes, "
           "one answer:\n     one-hot probabilities (cross_entropy_forward)   ");
    show(v->loss_probs, article_loss);
    printf("\n     NLL over log_softmax output (nll_loss)          ");
    show(v->loss_nll, article_loss);
    printf("\n     logits with class indices (cross_entropy)       ");
    show(v->loss_ce, article_loss);
    printf("\n\n6. Gradient of the mean loss with respect to the logits, "
           "(softmax - onehot) / 3,\n   from the saved log-sum-exp "
           "(backward) and in one fused pass:\n");
    for (int r = 0; r < 3; r++) {
        printf("     %s", r ? " " : "[");
        show_row(v->grad_fused + 3 * r, article_grad + 3 * r);
        printf("%s\n", r == 2 ? "]" : ",");
    }
    double diff = 0;
    for (int i = 0; i < 9; i++) {
        double d = fabs((double)v->grad_fused[i] - v->grad_backward[i]);
        if (!(d <= diff)) diff = d;
    }
    printf("     largest |fused - backward| = %.2e\n", diff);
}

int clxent_cmd_demo(int argc, char **argv) {
    const char *spec = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) { help(); return CLI_OK; }
        if ((r = cli_option(cmd, argc, argv, &i, "--device", &spec))) {
            if (r != 1) return r;
            continue;
        }
        return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
    }
    clxent_context *dev = NULL, *host = NULL;
    clxent_device_info info;
    int rc = cli_open_pair(cmd, spec, &dev, &host, &info);
    if (rc) return rc;
    demo_values d, h;
    const char *what = "";
    clxent_status st = demo_compute(dev, &d, &what);
    if (st != CLXENT_STATUS_OK) {
        rc = cli_fail_status(cmd, dev, st, what);
    } else if ((st = demo_compute(host, &h, &what)) != CLXENT_STATUS_OK) {
        rc = cli_fail_status(cmd, host, st, what);
    }
    if (rc) {
        clxent_context_destroy(dev);
        clxent_context_destroy(host);
        return rc;
    }
    printf("clxent demo: softmax cross-entropy and its gradient, step by "
           "step\n(the example of the seed article; PyTorch prints the same "
           "numbers)\n\n");
    printf("device:    %s  %s%s%s\n", info.spec, info.name,
           info.backend == CLXENT_BACKEND_HOST ? "" : " on ",
           info.backend == CLXENT_BACKEND_HOST ? "" : info.platform);
    printf("           chosen because: %s\n",
           info.reason[0] ? info.reason : "(no reason given)");
    printf("reference: host backend (plain C, double accumulation)%s\n",
           info.backend == CLXENT_BACKEND_HOST
               ? "\n           (the chosen device is the host backend itself)"
               : "");
    print_walkthrough(&d);

    const float *pd = (const float *)&d, *ph = (const float *)&h;
    double worst = 0;
    for (size_t i = 0; i < N_VALUES; i++) {
        double diff = fabs((double)pd[i] - ph[i]);
        if (!(diff <= worst)) worst = diff;
    }
    int dev_bad = count_mismatches(&d), host_bad = count_mismatches(&h);
    printf("\n7. Device against host: the largest |device - host| over every "
           "value above\n   is %.2e.\n\n", worst);
    if (dev_bad || host_bad || !(worst <= ARTICLE_TOL)) {
        printf("FAILED: %d device and %d host values differ from the article "
               "by more than %.0e\n(device values marked *like this*).\n",
               dev_bad, host_bad, ARTICLE_TOL);
        fprintf(stderr, "clxent demo: results disagree with the article\n");
        rc = CLI_RUNTIME;
    } else {
        printf("All values agree with the article (within %.0e).\n",
               ARTICLE_TOL);
    }
    clxent_context_destroy(dev);
    clxent_context_destroy(host);
    return rc;
}
