#include <clxent/clxent.h>
#include <stdio.h>

int main(void) {
    /* Three samples, three classes; the targets are class indices. */
    const float logits[3 * 3] = {1, 2, 3, 1, 2, 3, 1, 2, 3};
    const int32_t targets[3] = {0, 1, 2};
    float loss, grad[3 * 3];
    clxent_loss_options options = CLXENT_LOSS_OPTIONS_INIT; /* mean */

    clxent_context *ctx = NULL; /* NULL spec: $CLXENT_DEVICE, else a GPU, ... */
    clxent_status status = clxent_context_create(NULL, &ctx);
    if (status == CLXENT_STATUS_OK)
        status = clxent_cross_entropy_host(ctx, 3, 3, CLXENT_F32, logits,
                                           CLXENT_I32, targets, NULL, &options,
                                           &loss, NULL, grad);
    if (status != CLXENT_STATUS_OK) {
        fprintf(stderr, "clxent: %s\n", clxent_context_message(ctx));
        clxent_context_destroy(ctx);
        return 1;
    }
    printf("loss %.4f\n", loss); /* 1.4076 */
    for (int r = 0; r < 3; r++)
        printf("grad %7.4f %7.4f %7.4f\n", grad[3 * r], grad[3 * r + 1],
               grad[3 * r + 2]);
    clxent_context_destroy(ctx);
    return 0;
}
