/* The sharded vocabulary on the host (clxent.h, "Sharded vocabulary";
 * docs/semantics.md 13): the records in double, stored once in f32 (the
 * exp-sum as a high and a low part), and the loss and the gradient from
 * them as loss.c computes them unsharded. */
#include "reference/reference.h"

#include <math.h>
#include <stdlib.h>

enum { F = CLXENT_PARTIAL_FLOATS };

static double rec(const clxent_tensor *t, size_t r, int field) {
    return clx_host_get(t, r, (size_t)field);
}

static int64_t target_of(const clx_op *op, size_t r) {
    return op->indices.buffer ? clx_host_index(&op->indices, r) : 0;
}

static int valid_row(const clx_op *op, size_t r) {
    return !op->indices.buffer || target_of(op, r) != op->opt.loss.ignore_index;
}

/* Class indices in [0, classes_total) or ignore_index; after the
 * combination (records) also a valid row's OWN 1, else the records left
 * out the shard holding its class, counted it twice, or came from shards
 * that overlap, and the loss would be wrong without a word. The first
 * bad row of either kind, as the device's check; nothing written before
 * this passes. */
static clxent_status check_global(clxent_context *ctx, const clx_op *op,
                                  const clxent_tensor *records) {
    if (!op->indices.buffer) return CLXENT_STATUS_OK;
    size_t rows = clx_rows(op), C = clx_index_range(op);
    for (size_t r = 0; r < rows; ++r) {
        int64_t y = target_of(op, r);
        if (y == op->opt.loss.ignore_index) continue;
        int range = y < 0 || (uint64_t)y >= (uint64_t)C;
        if (!range &&
            (!records || rec(records, r, CLXENT_PARTIAL_OWN) == 1.0))
            continue;
        char pos[160];
        clx_position(clx_position_tensor(op), r, pos, sizeof pos);
        if (!range)
            return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, op->function,
                            "records[%zu]%s: the combined records do not "
                            "count the shard holding the target (class "
                            "%lld) exactly once (their OWN field): combine "
                            "every shard's records once, from shards whose "
                            "classes tile [0, classes_total)",
                            r, pos, (long long)y);
        return clx_fail(ctx, CLXENT_STATUS_TARGET_OUT_OF_RANGE, op->function,
                        "targets[%zu]%s = %lld is outside [0, %zu) "
                        "(classes_total) and is not ignore_index (%lld)",
                        r, pos, (long long)y, C,
                        (long long)op->opt.loss.ignore_index);
    }
    return CLXENT_STATUS_OK;
}

static double weight_of(const clx_op *op, size_t c) {
    return op->weights.buffer ? clx_host_vec_get(&op->weights, c) : 1.0;
}

/* a_c of the shard's class c (global C in eps / C). */
static double smooth_weight(const clx_op *op, size_t r, size_t c) {
    double w = weight_of(op, c);
    if (!op->probs.buffer) return w;
    double eps = op->opt.loss.label_smoothing;
    return w * ((1.0 - eps) * clx_host_get(&op->probs, r, c) +
                eps / (double)op->classes_total);
}

/* The shard's column of global class y, or -1. */
static long long local_of(const clx_op *op, int64_t y) {
    int64_t c = y - op->class_begin;
    return c >= 0 && (uint64_t)c < (uint64_t)op->x.classes ? (long long)c
                                                             : -1;
}

static clxent_status partial(clxent_context *ctx, const clx_op *op) {
    clxent_status st = check_global(ctx, op, NULL);
    if (st) return st;
    size_t C = op->x.classes, rows = clx_rows(op);
    double *x = clx_host_scratch(ctx, op, C, &st);
    if (!x) return st;
    for (size_t r = 0; r < rows; ++r) {
        clx_host_load_row(&op->x, r, x, &op->opt, NULL);
        double m = clx_host_row_max(x, C);
        double s = m == -INFINITY ? 0.0 : clx_host_row_expsum(x, C, m);
        double a = 0.0, b = 0.0;
        /* A and B only where the loss reads them, as the kernels */
        int need_ab = op->probs.buffer || op->opt.loss.label_smoothing > 0.0f;
        for (size_t c = 0; need_ab && c < C; ++c) {
            double ac = smooth_weight(op, r, c);
            a += ac;
            /* an -inf logit adds a_c * inf, as -a_c log p_c does */
            b += x[c] == -INFINITY ? ac * INFINITY : ac * (m - x[c]);
        }
        double xy = 0.0, wy = 0.0, own = 0.0;
        if (op->indices.buffer && valid_row(op, r)) {
            long long c = local_of(op, target_of(op, r));
            if (c >= 0) {
                xy = x[c];
                wy = weight_of(op, (size_t)c);
                own = 1.0;
            }
        }
        float hi = (float)s;
        double v[F] = {m, hi, isfinite(hi) ? s - (double)hi : 0.0, a, b,
                       xy, wy, own};
        for (int k = 0; k < F; ++k) clx_host_set(&op->records, r, (size_t)k, v[k]);
    }
    free(x);
    return CLXENT_STATUS_OK;
}

static clxent_status combine(const clx_op *op) {
    size_t rows = clx_rows(op);
    for (size_t r = 0; r < rows; ++r) {
        float a[F], b[F], o[F];
        for (int k = 0; k < F; ++k) {
            a[k] = (float)rec(&op->x, r, k);
            b[k] = (float)rec(&op->records, r, k);
        }
        clx_partial_combine_row(a, b, o);
        for (int k = 0; k < F; ++k) clx_host_set(&op->mat_out, r, (size_t)k, o[k]);
    }
    return CLXENT_STATUS_OK;
}

/* A combined row: m, log S (NaN without a finite logit, as unsharded). */
typedef struct shard_row {
    double m, ls, a, b, xy, wy;
} shard_row;

static shard_row row_of(const clxent_tensor *t, size_t r) {
    shard_row q;
    q.m = rec(t, r, CLXENT_PARTIAL_MAX);
    double s = rec(t, r, CLXENT_PARTIAL_SUM) +
               rec(t, r, CLXENT_PARTIAL_SUM_LO);
    q.ls = q.m == -INFINITY ? NAN : log(s);
    q.a = rec(t, r, CLXENT_PARTIAL_A);
    q.b = rec(t, r, CLXENT_PARTIAL_B);
    q.xy = rec(t, r, CLXENT_PARTIAL_XY);
    q.wy = rec(t, r, CLXENT_PARTIAL_WY);
    return q;
}

/* The mean's denominator: normalizer, W (sum of w_y over the valid rows)
 * or the rows (probabilities); *valid: rows that count. */
static double denominator(const clx_op *op, const clxent_tensor *records,
                          size_t *valid) {
    size_t rows = clx_rows(op);
    double w = 0.0;
    *valid = 0;
    for (size_t r = 0; r < rows; ++r) {
        if (!valid_row(op, r)) continue;
        ++*valid;
        w += op->indices.buffer ? rec(records, r, CLXENT_PARTIAL_WY) : 1.0;
    }
    if (op->opt.loss.normalizer > 0.0f) return op->opt.loss.normalizer;
    return w;
}

static clxent_status finalize(clxent_context *ctx, const clx_op *op) {
    clxent_status st = check_global(ctx, op, &op->x);
    if (st) return st;
    size_t rows = clx_rows(op), valid;
    double eps = op->opt.loss.label_smoothing, zeta = op->opt.loss.z_loss;
    double C = (double)op->classes_total;
    double den = denominator(op, &op->x, &valid);
    int none = op->opt.loss.reduction == CLXENT_REDUCTION_NONE;
    double total = 0.0, ztotal = 0.0;
    for (size_t r = 0; r < rows; ++r) {
        shard_row q = row_of(&op->x, r);
        double lse = q.m + q.ls, l = 0.0, z = 0.0;
        if (op->lse_out.buffer) clx_host_set(&op->lse_out, r, 0, lse);
        if (valid_row(op, r)) {
            if (op->indices.buffer) {
                l = (1.0 - eps) * q.wy * ((q.m - q.xy) + q.ls);
                if (eps > 0.0) l += eps / C * (q.a * q.ls + q.b);
            } else {
                l = q.a * q.ls + q.b;
            }
            z = zeta * lse * lse;
            l += z;
        }
        total += l;
        ztotal += z;
        if (none && op->vec_out.buffer) clx_host_set(&op->vec_out, r, 0, l);
        if (none && op->z_out.buffer) clx_host_set(&op->z_out, r, 0, z);
    }
    if (!none) {
        int mean = op->opt.loss.reduction == CLXENT_REDUCTION_MEAN;
        int empty = mean && valid == 0 && !(op->opt.loss.normalizer > 0.0f);
        double nan_or_0 = op->opt.loss.all_ignored_zero ? 0.0 : NAN;
        const clxent_tensor *outs[2] = {&op->vec_out, &op->z_out};
        double sums[2] = {total, ztotal};
        for (int k = 0; k < 2; ++k)
            if (outs[k]->buffer)
                clx_host_set(outs[k], 0, 0,
                             empty ? nan_or_0
                                   : mean ? sums[k] / den : sums[k]);
    }
    return CLXENT_STATUS_OK;
}

static clxent_status backward(clxent_context *ctx, const clx_op *op) {
    clxent_status st = check_global(ctx, op, &op->records);
    if (st) return st;
    size_t C = op->x.classes, rows = clx_rows(op), valid;
    double eps = op->opt.loss.label_smoothing, zeta = op->opt.loss.z_loss;
    double Ct = (double)op->classes_total;
    double den = denominator(op, &op->records, &valid);
    double scale = op->opt.loss.reduction == CLXENT_REDUCTION_MEAN ? 1.0 / den
                                                                   : 1.0;
    double *x = clx_host_scratch(ctx, op, 2 * C, &st);
    if (!x) return st;
    double *dxf = x + C;
    for (size_t r = 0; r < rows; ++r) {
        if (!valid_row(op, r)) {
            for (size_t c = 0; c < C; ++c) clx_host_set(&op->mat_out, r, c, 0.0);
            continue;
        }
        clx_host_load_row(&op->x, r, x, &op->opt, dxf);
        shard_row q = row_of(&op->records, r);
        double lse = q.m + q.ls;
        double g = op->opt.loss.grad_scale * scale;
        if (op->grad_rows.buffer) g *= clx_host_get(&op->grad_rows, r, 0);
        long long yc = op->indices.buffer ? local_of(op, target_of(op, r)) : -1;
        double tw = (1.0 - eps) * q.wy;
        double k1 = op->indices.buffer ? tw + (eps > 0.0 ? eps / Ct * q.a : 0.0)
                                       : q.a;
        k1 += 2.0 * zeta * lse;
        for (size_t c = 0; c < C; ++c) {
            double d = exp(x[c] - lse) * k1;
            if (op->indices.buffer) {
                if ((long long)c == yc) d -= tw;
                if (eps > 0.0) d -= eps / Ct * weight_of(op, c);
            } else {
                d -= smooth_weight(op, r, c);
            }
            clx_host_set(&op->mat_out, r, c, g * d * dxf[c]);
        }
    }
    free(x);
    return CLXENT_STATUS_OK;
}

clxent_status clx_host_shard(clxent_context *ctx, const clx_op *op) {
    switch (op->kind) {
    case CLX_OP_SHARD_PARTIAL: return partial(ctx, op);
    case CLX_OP_SHARD_COMBINE: return combine(op);
    case CLX_OP_SHARD_FINALIZE: return finalize(ctx, op);
    default: return backward(ctx, op);
    }
}
