/* NLL and cross-entropy on the host, straight from docs/semantics.md in double.
 * The order of work matters for three contracts: class indices are
 * range-checked before anything is written; the mean's denominator only
 * depends on targets and weights, so it is known before the first row; a
 * row is read whole before its gradient is written (in-place). */
#include "reference/reference.h"

#include <math.h>
#include <stdlib.h>

typedef struct loss_plan {
    size_t rows, cols;
    const clxent_tensor *y; /* class indices, or NULL */
    const clxent_tensor *t; /* probabilities, or NULL */
    double *w;              /* cols weights, or NULL (all 1) */
    double sum_w;           /* sum_j w[j] */
    double eps, zeta;
    size_t valid; /* rows that count (not ignored) */
    double denom; /* mean's denominator: D, else W (indices) or R (probs) */
    double scale; /* s: 1/denom for mean, 1 for sum and none */
} loss_plan;

static double weight(const loss_plan *p, int64_t c) {
    return p->w ? p->w[c] : 1.0;
}

static int64_t target(const loss_plan *p, size_t r) {
    return clx_host_index(p->y, r);
}

static int row_valid(const loss_plan *p, const clx_op *op, size_t r) {
    return !p->y || target(p, r) != op->opt.loss.ignore_index;
}

/* The first row whose label is neither ignore_index nor in [0, C). */
static clxent_status check_targets(clxent_context *ctx, const clx_op *op,
                                   const loss_plan *p) {
    for (size_t r = 0; r < p->rows; ++r) {
        int64_t y = target(p, r);
        if (y == op->opt.loss.ignore_index) continue;
        char pos[160];
        clx_position(clx_position_tensor(op), r, pos, sizeof pos);
        if (y < 0 || (uint64_t)y >= (uint64_t)p->cols)
            return clx_fail(ctx, CLXENT_STATUS_TARGET_OUT_OF_RANGE,
                            op->function,
                            "targets[%zu]%s = %lld is outside [0, %zu) and "
                            "is not ignore_index (%lld)",
                            r, pos, (long long)y, p->cols,
                            (long long)op->opt.loss.ignore_index);
    }
    return CLXENT_STATUS_OK;
}

static void plan_free(loss_plan *p) {
    free(p->w);
    p->w = NULL;
}

/* Checks the targets and computes everything that spans rows. */
static clxent_status plan_make(clxent_context *ctx, const clx_op *op,
                               loss_plan *p) {
    p->rows = clx_rows(op);
    p->cols = op->x.classes;
    p->y = op->probs.buffer ? NULL : &op->indices;
    p->t = op->probs.buffer ? &op->probs : NULL;
    p->w = NULL;
    p->eps = op->opt.loss.label_smoothing;
    p->zeta = op->opt.loss.z_loss;
    if (p->y) {
        clxent_status st = check_targets(ctx, op, p);
        if (st != CLXENT_STATUS_OK) return st;
    }
    p->sum_w = (double)p->cols;
    if (op->weights.buffer) {
        clxent_status st;
        p->w = clx_host_scratch(ctx, op, p->cols, &st);
        if (!p->w) return st;
        p->sum_w = 0.0;
        for (size_t c = 0; c < p->cols; ++c) {
            p->w[c] = clx_host_vec_get(&op->weights, c);
            p->sum_w += p->w[c];
        }
    }
    double total_w = 0.0;
    p->valid = 0;
    for (size_t r = 0; r < p->rows; ++r) {
        if (!row_valid(p, op, r)) continue;
        ++p->valid;
        if (p->y) total_w += weight(p, target(p, r));
    }
    p->denom = p->y ? total_w : (double)p->rows;
    if (op->opt.loss.normalizer > 0.0f) p->denom = op->opt.loss.normalizer;
    p->scale = op->opt.loss.reduction == CLXENT_REDUCTION_MEAN ? 1.0 / p->denom
                                                           : 1.0;
    return CLXENT_STATUS_OK;
}

/* The reduced loss from the sum of the valid rows' losses. */
static double reduce(const loss_plan *p, const clx_op *op, double total) {
    if (op->opt.loss.reduction == CLXENT_REDUCTION_SUM) return total;
    if (p->valid == 0 && !(op->opt.loss.normalizer > 0.0f))
        return op->opt.loss.all_ignored_zero ? 0.0 : NAN;
    return total / p->denom;
}

/* G * s, times the row's upstream gradient when one is given. */
static double grad_factor(const loss_plan *p, const clx_op *op, size_t r) {
    double g = op->opt.loss.grad_scale;
    if (op->grad_rows.buffer) g *= clx_host_get(&op->grad_rows, r, 0);
    return g * p->scale;
}

/* Writes the loss: per row for none (done by the caller), else once. */
static void store_reduced(const loss_plan *p, const clx_op *op,
                          const clxent_tensor *out, double total) {
    if (op->opt.loss.reduction != CLXENT_REDUCTION_NONE && out->buffer)
        clx_host_set(out, 0, 0, reduce(p, op, total));
}

/* ---- NLL over given log-probabilities ---- */

clxent_status clx_host_nll_forward(clxent_context *ctx, const clx_op *op) {
    loss_plan p;
    clxent_status st = plan_make(ctx, op, &p);
    if (st != CLXENT_STATUS_OK) return st;
    double total = 0.0;
    for (size_t r = 0; r < p.rows; ++r) {
        double l = 0.0;
        if (row_valid(&p, op, r)) {
            int64_t y = target(&p, r);
            l = -weight(&p, y) * clx_host_get(&op->x, r, (size_t)y);
            total += l;
        }
        if (op->opt.loss.reduction == CLXENT_REDUCTION_NONE)
            clx_host_set(&op->vec_out, r, 0, l);
    }
    store_reduced(&p, op, &op->vec_out, total);
    plan_free(&p);
    return CLXENT_STATUS_OK;
}

clxent_status clx_host_nll_backward(clxent_context *ctx, const clx_op *op) {
    loss_plan p;
    clxent_status st = plan_make(ctx, op, &p);
    if (st != CLXENT_STATUS_OK) return st;
    for (size_t r = 0; r < p.rows; ++r) {
        for (size_t c = 0; c < p.cols; ++c)
            clx_host_set(&op->mat_out, r, c, 0.0);
        if (!row_valid(&p, op, r)) continue;
        int64_t y = target(&p, r);
        clx_host_set(&op->mat_out, r, (size_t)y,
                         -grad_factor(&p, op, r) * weight(&p, y));
    }
    plan_free(&p);
    return CLXENT_STATUS_OK;
}

/* ---- cross-entropy rows ---- */

static double log_prob(const double *x, clx_host_stats s, size_t c) {
    return (x[c] - s.max) - s.log_sum;
}

/* l = (1-eps)*nll + (eps/C)*smooth + zeta*lse^2 for a valid row. */
static double loss_indices(const loss_plan *p, const double *x,
                           clx_host_stats s, int64_t y) {
    double l = (1.0 - p->eps) * -(weight(p, y) * log_prob(x, s, (size_t)y));
    if (p->eps > 0.0) {
        double smooth = 0.0;
        for (size_t c = 0; c < p->cols; ++c)
            smooth -= weight(p, (int64_t)c) * log_prob(x, s, c);
        l += p->eps / (double)p->cols * smooth;
    }
    if (p->zeta != 0.0) {
        double lse = s.max + s.log_sum;
        l += p->zeta * lse * lse;
    }
    return l;
}

/* Gradients are with respect to the transformed logits x', times the
 * transform's derivative dxf[c] (the chain rule). */
static void grad_indices(const loss_plan *p, const clx_op *op, size_t r,
                         const double *x, const double *dxf,
                         clx_host_stats s, int64_t y) {
    double g = grad_factor(p, op, r);
    double lse = s.max + s.log_sum;
    double target_w = (1.0 - p->eps) * weight(p, y);
    double spread = p->eps / (double)p->cols;
    double coef = target_w + (p->eps > 0.0 ? spread * p->sum_w : 0.0);
    for (size_t c = 0; c < p->cols; ++c) {
        double prob = exp(log_prob(x, s, c));
        double d = prob * coef;
        if (c == (size_t)y) d -= target_w;
        if (p->eps > 0.0) d -= spread * weight(p, (int64_t)c);
        if (p->zeta != 0.0) d += 2.0 * p->zeta * lse * prob;
        clx_host_set(&op->mat_out, r, c, g * d * dxf[c]);
    }
}

/* a[c] = w[c] * ((1-eps)*t[c] + eps/C); returns sum_c a[c]. */
static double prob_weights(const loss_plan *p, size_t r, double *a) {
    double sum = 0.0;
    for (size_t c = 0; c < p->cols; ++c) {
        double t = (1.0 - p->eps) * clx_host_get(p->t, r, c) +
                   p->eps / (double)p->cols;
        a[c] = weight(p, (int64_t)c) * t;
        sum += a[c];
    }
    return sum;
}

static double loss_probs(const loss_plan *p, const double *x,
                         clx_host_stats s, const double *a) {
    double l = 0.0;
    for (size_t c = 0; c < p->cols; ++c) l -= a[c] * log_prob(x, s, c);
    if (p->zeta != 0.0) {
        double lse = s.max + s.log_sum;
        l += p->zeta * lse * lse;
    }
    return l;
}

static void grad_probs(const loss_plan *p, const clx_op *op, size_t r,
                       const double *x, const double *dxf, clx_host_stats s,
                       const double *a, double sum_a) {
    double g = grad_factor(p, op, r);
    double lse = s.max + s.log_sum;
    for (size_t c = 0; c < p->cols; ++c) {
        double prob = exp(log_prob(x, s, c));
        double d = prob * sum_a - a[c];
        if (p->zeta != 0.0) d += 2.0 * p->zeta * lse * prob;
        clx_host_set(&op->mat_out, r, c, g * d * dxf[c]);
    }
}

/* Forward, backward or both, row by row, on the transformed logits.
 * Backward without the forward takes the row statistics from the given
 * lse (vec_in). z_out gets the z-loss part, reduced as the loss. */
clxent_status clx_host_cross_entropy(clxent_context *ctx, const clx_op *op) {
    int forward = op->kind != CLX_OP_CE_BACKWARD;
    int backward = op->kind != CLX_OP_CE_FORWARD && op->mat_out.buffer;
    int none = op->opt.loss.reduction == CLXENT_REDUCTION_NONE;
    loss_plan p;
    clxent_status st = plan_make(ctx, op, &p);
    if (st != CLXENT_STATUS_OK) return st;
    double *x = clx_host_scratch(ctx, op, 2 * p.cols, &st);
    double *a = x && p.t ? clx_host_scratch(ctx, op, p.cols, &st) : NULL;
    if (!x || (p.t && !a)) {
        free(x);
        plan_free(&p);
        return st;
    }
    double *dxf = x + p.cols;
    double total = 0.0, ztotal = 0.0;
    for (size_t r = 0; r < p.rows; ++r) {
        clx_host_load_row(&op->x, r, x, &op->opt, dxf);
        clx_host_stats s;
        if (forward) {
            s = clx_host_row_stats(x, p.cols);
            if (op->lse_out.buffer)
                clx_host_set(&op->lse_out, r, 0, s.max + s.log_sum);
        } else {
            /* The saved lse is used as given, p = exp(x - lse), as every
             * device does: the reference must compute the same function.
             * (Its f32 rounding moves p by up to ~|lse| * 2^-24; the fused
             * path, which keeps lse on chip, has no such error.) */
            s.max = clx_host_get(&op->vec_in, r, 0);
            s.log_sum = 0.0;
        }
        int valid = row_valid(&p, op, r);
        int64_t y = p.y ? target(&p, r) : 0;
        double sum_a = valid && p.t ? prob_weights(&p, r, a) : 0.0;
        if (forward) {
            double l = 0.0, z = 0.0; /* ignored rows: exactly 0 */
            if (valid) {
                l = p.t ? loss_probs(&p, x, s, a) : loss_indices(&p, x, s, y);
                double lse = s.max + s.log_sum;
                z = p.zeta * lse * lse;
            }
            total += l;
            ztotal += z;
            if (none && op->vec_out.buffer) clx_host_set(&op->vec_out, r, 0, l);
            if (none && op->z_out.buffer) clx_host_set(&op->z_out, r, 0, z);
        }
        if (!backward) continue;
        if (!valid) {
            for (size_t c = 0; c < p.cols; ++c)
                clx_host_set(&op->mat_out, r, c, 0.0);
        } else if (p.t) {
            grad_probs(&p, op, r, x, dxf, s, a, sum_a);
        } else {
            grad_indices(&p, op, r, x, dxf, s, y);
        }
    }
    if (forward) {
        store_reduced(&p, op, &op->vec_out, total);
        store_reduced(&p, op, &op->z_out, ztotal);
    }
    free(a);
    free(x);
    plan_free(&p);
    return CLXENT_STATUS_OK;
}
