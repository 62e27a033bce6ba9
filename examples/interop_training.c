/* Interop example: a program that owns its OpenCL context, queue and
 * buffers (as a training framework would) and asks clxent for the fused
 * cross-entropy loss and gradient on them, ordered by OpenCL events.
 *
 * It trains a linear classifier (3 classes, 2 features + a bias column)
 * on synthetic separable data by gradient descent:
 *   write W (own event) -> logits = X W (own kernel, waits on the write)
 *   -> clxent_cross_entropy (waits on the kernel, returns an out-event)
 *   -> wait on that event, read the gradient dZ, dW = X^T dZ on the host.
 *
 * Usage: interop_training [SPEC]   (default: $CLXENT_DEVICE, else the
 * default rule). Exit 0 when the final loss is below half the initial
 * one, 1 otherwise or on error, 77 when there is no OpenCL device (the
 * host backend has no queue to share) unless CLXENT_REQUIRE_DEVICE=1. */
#include <clxent/clxent.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 96      /* samples */
#define F 3       /* features: x, y and a constant 1 (bias) */
#define C 3       /* classes */
#define STEPS 50
#define RATE 0.1f /* learning rate */

static const char *kernel_source =
    "__kernel void linear(__global const float *x, __global const float *w,\n"
    "                     __global float *z, int f, int c) {\n"
    "    int r = get_global_id(0), k = get_global_id(1);\n"
    "    float s = 0.0f;\n"
    "    for (int j = 0; j < f; j++) s += x[r * f + j] * w[j * c + k];\n"
    "    z[r * c + k] = s;\n"
    "}\n";

#define CL_CHECK(call, what)                                                   \
    do {                                                                       \
        cl_int err_ = (call);                                                  \
        if (err_ != CL_SUCCESS) {                                              \
            fprintf(stderr, "interop: %s failed (OpenCL error %d)\n", what,    \
                    (int)err_);                                                \
            goto done;                                                         \
        }                                                                      \
    } while (0)

#define CLXENT_CHECK(call, what)                                               \
    do {                                                                       \
        clxent_status st_ = (call);                                            \
        if (st_ != CLXENT_STATUS_OK) {                                         \
            fprintf(stderr, "interop: %s: %s\n", what,                         \
                    clxent_context_message(cx));                               \
            goto done;                                                         \
        }                                                                      \
    } while (0)

/* Three blobs around the corners of a triangle, with a bias column. */
static void make_data(float *x, int32_t *y) {
    unsigned seed = 12345;
    for (int r = 0; r < N; r++) {
        int k = r % C;
        float noise[2];
        for (int j = 0; j < 2; j++) {
            seed = seed * 1103515245u + 12345u;
            noise[j] = ((float)((seed >> 16) & 0x7fff) / 32767.0f - 0.5f);
        }
        x[r * F + 0] = 2.0f * cosf(2.0944f * (float)k) + noise[0];
        x[r * F + 1] = 2.0f * sinf(2.0944f * (float)k) + noise[1];
        x[r * F + 2] = 1.0f;
        y[r] = k;
    }
}

/* The cl_device_id of an OpenCL device that clxent's spec grammar picks. */
static int pick_device(const char *spec, cl_device_id *device) {
    clxent_device_info info;
    char message[1024];
    if (clxent_device_resolve(spec, &info, message, sizeof message) !=
        CLXENT_STATUS_OK) {
        fprintf(stderr, "interop: %s\n", message);
        return 1;
    }
    if (info.backend != CLXENT_BACKEND_OPENCL) {
        const char *req = getenv("CLXENT_REQUIRE_DEVICE");
        fprintf(stderr, "interop: needs an OpenCL device, got '%s'\n",
                info.spec);
        return req && strcmp(req, "1") == 0 ? 1 : 77;
    }
    cl_platform_id platforms[16];
    cl_device_id devices[64];
    cl_uint np = 0, nd = 0;
    if (clGetPlatformIDs(16, platforms, &np) != CL_SUCCESS ||
        (cl_uint)info.platform_index >= np ||
        clGetDeviceIDs(platforms[info.platform_index], CL_DEVICE_TYPE_ALL, 64,
                       devices, &nd) != CL_SUCCESS ||
        (cl_uint)info.device_index >= nd) {
        fprintf(stderr, "interop: cannot open device %s\n", info.spec);
        return 1;
    }
    *device = devices[info.device_index];
    printf("device %s: %s (%s)\n", info.spec, info.name, info.platform);
    return 0;
}

int main(int argc, char **argv) {
    const char *spec = argc > 1 ? argv[1] : getenv("CLXENT_DEVICE");
    int result = 1;
    float x[N * F], w[F * C] = {0}, grad[N * C], loss = 0, first = 0;
    int32_t y[N];
    cl_device_id device;
    cl_context context = NULL;
    cl_command_queue queue = NULL;
    cl_program program = NULL;
    cl_kernel kernel = NULL;
    cl_mem x_mem = NULL, w_mem = NULL, z_mem = NULL, g_mem = NULL,
           y_mem = NULL, loss_mem = NULL;
    clxent_context *cx = NULL;
    clxent_buffer *z_buf = NULL, *g_buf = NULL, *y_buf = NULL,
                  *loss_buf = NULL;
    cl_int err = CL_SUCCESS;

    make_data(x, y);
    int picked = pick_device(spec && *spec ? spec : NULL, &device);
    if (picked) return picked;

    /* The application's own OpenCL objects. */
    context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CL_CHECK(err, "clCreateContext");
    queue = clCreateCommandQueue(context, device, 0, &err);
    CL_CHECK(err, "clCreateCommandQueue");
    program = clCreateProgramWithSource(context, 1, &kernel_source, NULL, &err);
    CL_CHECK(err, "clCreateProgramWithSource");
    CL_CHECK(clBuildProgram(program, 1, &device, "", NULL, NULL),
             "clBuildProgram");
    kernel = clCreateKernel(program, "linear", &err);
    CL_CHECK(err, "clCreateKernel");
    const cl_mem_flags ro = CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR;
    x_mem = clCreateBuffer(context, ro, sizeof x, x, &err);
    CL_CHECK(err, "clCreateBuffer(x)");
    y_mem = clCreateBuffer(context, ro, sizeof y, y, &err);
    CL_CHECK(err, "clCreateBuffer(y)");
    w_mem = clCreateBuffer(context, CL_MEM_READ_ONLY, sizeof w, NULL, &err);
    CL_CHECK(err, "clCreateBuffer(w)");
    z_mem = clCreateBuffer(context, CL_MEM_READ_WRITE, sizeof grad, NULL, &err);
    CL_CHECK(err, "clCreateBuffer(z)");
    g_mem = clCreateBuffer(context, CL_MEM_READ_WRITE, sizeof grad, NULL, &err);
    CL_CHECK(err, "clCreateBuffer(grad)");
    loss_mem = clCreateBuffer(context, CL_MEM_READ_WRITE, sizeof loss, NULL,
                              &err);
    CL_CHECK(err, "clCreateBuffer(loss)");
    cl_int f = F, c = C;
    CL_CHECK(clSetKernelArg(kernel, 0, sizeof x_mem, &x_mem), "arg x");
    CL_CHECK(clSetKernelArg(kernel, 1, sizeof w_mem, &w_mem), "arg w");
    CL_CHECK(clSetKernelArg(kernel, 2, sizeof z_mem, &z_mem), "arg z");
    CL_CHECK(clSetKernelArg(kernel, 3, sizeof f, &f), "arg f");
    CL_CHECK(clSetKernelArg(kernel, 4, sizeof c, &c), "arg c");

    /* clxent on the same queue, over the same cl_mem objects. */
    CLXENT_CHECK(clxent_context_create_from_queue(queue, &cx),
                 "clxent_context_create_from_queue");
    CLXENT_CHECK(clxent_buffer_wrap(cx, z_mem, &z_buf), "wrap logits");
    CLXENT_CHECK(clxent_buffer_wrap(cx, g_mem, &g_buf), "wrap grad");
    CLXENT_CHECK(clxent_buffer_wrap(cx, y_mem, &y_buf), "wrap targets");
    CLXENT_CHECK(clxent_buffer_wrap(cx, loss_mem, &loss_buf), "wrap loss");
    const clxent_matrix logits = clxent_matrix_of(z_buf, N, C, CLXENT_F32);
    const clxent_matrix grad_m = clxent_matrix_of(g_buf, N, C, CLXENT_F32);
    const clxent_targets targets = {clxent_vector_of(y_buf, N, CLXENT_I32),
                                    {0}};
    const clxent_vector loss_v = clxent_vector_of(loss_buf, 1, CLXENT_F32);
    clxent_loss_options options = CLXENT_LOSS_OPTIONS_INIT; /* mean */

    for (int step = 0; step <= STEPS; step++) {
        cl_event wrote, logits_ready, loss_ready;
        const size_t global[2] = {N, C};
        CL_CHECK(clEnqueueWriteBuffer(queue, w_mem, CL_FALSE, 0, sizeof w, w,
                                      0, NULL, &wrote),
                 "clEnqueueWriteBuffer(w)");
        CL_CHECK(clEnqueueNDRangeKernel(queue, kernel, 2, NULL, global, NULL,
                                        1, &wrote, &logits_ready),
                 "clEnqueueNDRangeKernel");
        clReleaseEvent(wrote);
        const clxent_events events = {1, &logits_ready, &loss_ready};
        clxent_status st = clxent_cross_entropy(cx, &logits, &targets, NULL,
                                                &options, NULL, &loss_v, NULL,
                                                &grad_m, &events);
        clReleaseEvent(logits_ready);
        CLXENT_CHECK(st, "clxent_cross_entropy");
        /* The out-event says the loss and gradient are complete. */
        err = clWaitForEvents(1, &loss_ready);
        clReleaseEvent(loss_ready);
        CL_CHECK(err, "clWaitForEvents");
        CL_CHECK(clEnqueueReadBuffer(queue, loss_mem, CL_TRUE, 0, sizeof loss,
                                     &loss, 0, NULL, NULL),
                 "clEnqueueReadBuffer(loss)");
        CL_CHECK(clEnqueueReadBuffer(queue, g_mem, CL_TRUE, 0, sizeof grad,
                                     grad, 0, NULL, NULL),
                 "clEnqueueReadBuffer(grad)");
        if (step == 0) first = loss;
        if (step % 5 == 0) printf("step %2d  loss %.4f\n", step, loss);
        if (step == STEPS) break;
        /* dL/dW = X^T dL/dZ; the mean's 1/N is already in the gradient. */
        for (int j = 0; j < F; j++)
            for (int k = 0; k < C; k++) {
                float s = 0;
                for (int r = 0; r < N; r++) s += x[r * F + j] * grad[r * C + k];
                w[j * C + k] -= RATE * s;
            }
    }
    printf("loss %.4f -> %.4f (%s)\n", first, loss,
           loss < 0.5f * first ? "fell below half" : "did NOT fall enough");
    result = loss < 0.5f * first && isfinite(loss) ? 0 : 1;

done:
    /* clxent's wraps and context first, then the application's objects. */
    clxent_buffer_release(z_buf);
    clxent_buffer_release(g_buf);
    clxent_buffer_release(y_buf);
    clxent_buffer_release(loss_buf);
    clxent_context_destroy(cx);
    cl_mem mems[] = {x_mem, w_mem, z_mem, g_mem, y_mem, loss_mem};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i]) clReleaseMemObject(mems[i]);
    if (kernel) clReleaseKernel(kernel);
    if (program) clReleaseProgram(program);
    if (queue) clReleaseCommandQueue(queue);
    if (context) clReleaseContext(context);
    return result;
}
