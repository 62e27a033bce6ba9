/* A program built against an installed clxent (see CMakeLists.txt and
 * Makefile here; tests/install_consumer.sh drives both). It computes the
 * seed article's batch loss and gradient on the chosen device and on the
 * host backend and checks both.
 * Usage: consumer [SPEC]; exit 0 ok, 1 failure, 77 no OpenCL device
 * (unless CLXENT_REQUIRE_DEVICE=1). */
#include <clxent/clxent.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(const char *spec, float *loss, float *grad, char *name,
               size_t name_size, clxent_backend *backend) {
    const float logits[9] = {1, 2, 3, 1, 2, 3, 1, 2, 3};
    const int64_t targets[3] = {0, 1, 2};
    clxent_loss_options options;
    clxent_loss_options_init(&options);
    clxent_context *ctx = NULL;
    clxent_device_info info;
    clxent_status st = clxent_context_create(spec, &ctx);
    if (!st) st = clxent_context_info(ctx, &info);
    if (!st)
        st = clxent_cross_entropy_host(ctx, 3, 3, CLXENT_F32, logits,
                                       CLXENT_I64, targets, NULL, &options,
                                       loss, NULL, grad);
    if (st) {
        fprintf(stderr, "consumer: %s: %s\n", clxent_status_name(st),
                clxent_context_message(ctx));
    } else {
        snprintf(name, name_size, "%s (%s)", info.name, info.spec);
        *backend = info.backend;
    }
    clxent_context_destroy(ctx);
    return st != CLXENT_STATUS_OK;
}

int main(int argc, char **argv) {
    /* The header and the library found at run time must agree. */
    if (strcmp(clxent_version(), CLXENT_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header %s but library %s\n",
                CLXENT_VERSION_STRING, clxent_version());
        return 1;
    }
    float loss, grad[9], host_loss, host_grad[9];
    char name[300], host_name[300];
    clxent_backend backend = CLXENT_BACKEND_HOST, host_backend;
    if (run(argc > 1 ? argv[1] : NULL, &loss, grad, name, sizeof name,
            &backend) ||
        run("host", &host_loss, host_grad, host_name, sizeof host_name,
            &host_backend))
        return 1;
    if (backend != CLXENT_BACKEND_OPENCL) {
        const char *req = getenv("CLXENT_REQUIRE_DEVICE");
        fprintf(stderr, "consumer: no OpenCL device, got %s\n", name);
        return req && strcmp(req, "1") == 0 ? 1 : 77;
    }
    /* Seed article: mean loss 1.4076; gradient (softmax - onehot) / 3. */
    const double softmax[3] = {0.09003057, 0.24472847, 0.66524096};
    int bad = fabs(loss - 1.40760596) > 1e-5 || fabs(host_loss - loss) > 1e-5;
    for (int i = 0; i < 9; i++) {
        double want = (softmax[i % 3] - (i / 3 == i % 3)) / 3.0;
        bad |= fabs(grad[i] - want) > 1e-6 || fabs(host_grad[i] - want) > 1e-6;
    }
    printf("clxent %s on %s: loss %.4f (host %.4f), grad[0] %.4f: %s\n",
           clxent_version(), name, loss, host_loss, grad[0],
           bad ? "WRONG" : "ok");
    return bad;
}
