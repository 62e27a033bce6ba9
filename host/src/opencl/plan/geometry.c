/* Launch geometry from the context's parameters (kernels/common.h has the
 * work mapping):
 * - GPU mapping (group_rows, or vec 1: lid-strided, coalesced loads): T
 *   items per row, T a power of two from C up to the group; L/T rows per
 *   group.
 * - CPU mapping (vec > 1: SIMD inside a work-item): a row per item, the
 *   group shrunk so that every core gets groups.
 * - Rows too few to fill the device and long enough: split in P chunks (a
 *   group per chunk, or with split_per_item an item per chunk), partial
 *   states merged in fixed order by a second kernel (deterministic, no
 *   atomics). */
#include "opencl/plan/plan.h"

#include <stdio.h>

static size_t pow2_floor(size_t v) {
    size_t p = 1;
    while (v >= 2 * p) p *= 2;
    return p;
}

static size_t pow2_ceil(size_t v) {
    size_t p = 1;
    while (p < v) p *= 2;
    return p;
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }
static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }
static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

#define PV(s, name) ((size_t)CLX_P(&(s)->params, name))

void clx_derive(clx_opencl_state *s) {
    clx_derived *t = &s->d;
    t->vec = (unsigned)PV(s, vec);
    t->kt = PV(s, kt) ? (unsigned)PV(s, kt) : t->vec == 1 ? 8 : 2;
    size_t maxg =
        pow2_floor(min_size(max_size(s->max_work_group_size, 1), 1024));
    size_t forced = PV(s, group_size);
    if (forced) {
        t->row_group = t->small_group = min_size(pow2_floor(forced), maxg);
    } else {
        t->row_group = min_size(PV(s, row_group), maxg);
        t->small_group = min_size(PV(s, small_group), maxg);
    }
    size_t cus = s->compute_units ? s->compute_units : 1;
    t->target_groups = PV(s, groups_per_cu) * cus;
    t->split_rows = PV(s, split_rows_per_cu) * cus;
}

size_t clx_cached_block(const clx_opencl_state *s, size_t C) {
    size_t tile = (size_t)s->d.vec * s->d.kt;
    size_t bl = PV(s, cached_block);
    bl = bl > tile ? bl / tile * tile : tile;
    if (div_up(C, bl) > 1024) bl = div_up(div_up(C, 1024), tile) * tile;
    return bl;
}

size_t clx_cache_stride(const clx_opencl_state *s, size_t C) {
    return div_up(C, s->d.vec) * s->d.vec;
}

size_t clx_batch_cache_floats(const clx_opencl_state *s, size_t C) {
    return CLX_BATCH_ROWS * clx_cache_stride(s, C);
}

size_t clx_cached_group(const clx_opencl_state *s, size_t L,
                        size_t kernel_max, size_t cache_floats) {
    size_t local = (size_t)s->local_mem_bytes, margin = PV(s, local_margin);
    size_t budget = local > margin ? local - margin : 0;
    size_t item = cache_floats * 4;
    if (item > budget) return 0;
    while (L > 1 && (L > kernel_max || L * item > budget)) L /= 2;
    return L;
}

/* Split chunk count for a stats kernel, 0 for whole rows. Groups of Ls
 * items per chunk (at most Ls chunks, one state per item in the merge,
 * unless forced), or one item per chunk (per_item). */
static size_t split_chunks(const clx_opencl_state *s, size_t R, size_t C,
                           size_t Ls, int per_item) {
    const clx_derived *t = &s->d;
    size_t forced = PV(s, split_chunks);
    if (forced > 1) return forced; /* any count: states merged in turn */
    if (forced == 1 || (!per_item && Ls < 2)) return 0;
    size_t min_chunk =
        per_item ? PV(s, split_item_chunk) : Ls * t->vec * t->kt * 4;
    size_t P = 0;
    if (R < t->split_rows && C >= 2 * min_chunk)
        P = min_size(div_up(2 * t->target_groups, R), C / min_chunk);
    P = min_size(P, per_item ? 256 : Ls);
    return P >= 2 ? P : 0;
}

clx_geom clx_geom_rows(const clx_opencl_state *s, size_t R, size_t C,
                       size_t kernel_max) {
    const clx_derived *t = &s->d;
    size_t kmax = pow2_floor(max_size(kernel_max, 1));
    clx_geom g;
    g.P = 1;
    g.CH = (unsigned)C;
    g.split = 0;
    /* an item per chunk (no strided loads, no barrier; the merge takes
     * the states in turn) where the mapping and parameters allow it */
    int per_item = PV(s, split_per_item) && t->vec > 1 && !PV(s, group_size);
    size_t Ls = per_item ? 1 : min_size(t->row_group, kmax);
    size_t P = split_chunks(s, R, C, Ls, per_item);
    if (P) {
        g.split = 1;
        g.L = Ls;
        g.T = (unsigned)Ls;
        g.P = (unsigned)P;
        g.CH = (unsigned)(div_up(div_up(C, P), t->vec) * t->vec);
        g.groups = R * P;
        return g;
    }
    size_t T, L;
    size_t forced_t = PV(s, items_per_row);
    if (forced_t) {
        T = pow2_floor(forced_t);
        L = max_size(T, min_size(t->small_group, kmax));
    } else if (PV(s, group_rows) || t->vec == 1) {
        L = min_size(t->row_group, kmax);
        T = pow2_ceil(div_up(C, 2 * t->vec * t->kt));
    } else {
        T = 1;
        L = pow2_floor(max_size(R / t->target_groups, 1));
    }
    L = min_size(min_size(L, max_size(t->small_group, t->row_group)), kmax);
    L = max_size(L, 1);
    T = min_size(T, L);
    g.L = L;
    g.T = (unsigned)T;
    g.groups = div_up(R, L / T);
    return g;
}

clx_geom clx_geom_elems(const clx_opencl_state *s, size_t R, size_t C,
                        size_t kernel_max) {
    const clx_derived *t = &s->d;
    size_t kmax = pow2_floor(max_size(kernel_max, 1));
    size_t tile = t->vec * t->kt;
    int gpu_map = PV(s, group_rows) != 0;
    size_t forced_t = PV(s, items_per_row);
    clx_geom g;
    g.split = 0;
    size_t T, L;
    if (forced_t) {
        T = pow2_floor(forced_t);
        L = max_size(T, t->small_group);
    } else if (gpu_map || t->vec == 1) {
        L = t->row_group;
        T = pow2_ceil(div_up(C, 2 * tile));
    } else {
        T = 1;
        L = t->small_group;
    }
    L = max_size(min_size(L, kmax), 1);
    T = min_size(T, L);
    size_t per = L / T; /* units per group */
    size_t P = 1;
    size_t forced = PV(s, split_chunks);
    if (forced > 1) {
        P = forced;
    } else if (forced == 0) {
        size_t want = gpu_map ? t->target_groups * per : 4 * t->target_groups;
        if (R < want) P = min_size(div_up(want, R), div_up(C, T * tile * 8));
    }
    P = max_size(P, 1);
    if (!gpu_map && T == 1 && !forced_t && !PV(s, group_size)) {
        /* enough groups for every core: shrink the group */
        size_t units = R * P;
        L = min_size(L, pow2_floor(max_size(units / t->target_groups, 1)));
        per = L;
    }
    g.L = L;
    g.T = (unsigned)T;
    g.P = (unsigned)P;
    g.CH = (unsigned)(P > 1 ? div_up(div_up(C, P), t->vec) * t->vec : C);
    g.groups = div_up(R * P, per);
    return g;
}

size_t clx_vec_rows_group(const clx_opencl_state *s, size_t rows,
                          size_t kmax, size_t item_floats, size_t *global) {
    const clx_derived *t = &s->d;
    size_t items = (rows + t->vec - 1) / t->vec;
    size_t L = 1;
    while (L * 2 <= items / t->target_groups && L * 2 <= t->small_group &&
           L * 2 <= kmax)
        L *= 2;
    if (item_floats) { /* 0: not even one fits (the launch then fails) */
        size_t Lc = clx_cached_group(s, L, kmax, item_floats);
        L = Lc ? Lc : 1;
    }
    *global = (items + L - 1) / L * L;
    return L;
}

size_t clx_reduce_group(const clx_opencl_state *s, size_t kmax) {
    return pow2_floor(max_size(min_size(PV(s, reduce_group), kmax), 1));
}

size_t clx_reduce_groups(const clx_opencl_state *s, size_t n, size_t L) {
    size_t slots = (n + s->d.vec - 1) / s->d.vec;
    size_t per = PV(s, reduce_slots);
    size_t G = (slots + L * per - 1) / (L * per);
    G = min_size(G, s->d.target_groups);
    if (PV(s, reduce_groups)) G = PV(s, reduce_groups);
    return G ? G : 1;
}

int clx_store_code(clxent_dtype d) {
    return d == CLXENT_F16    ? CLX_STORE_F16
           : d == CLXENT_BF16 ? CLX_STORE_BF16
                              : CLX_STORE_F32;
}

void clx_build_options(const clx_opencl_state *s, unsigned vec, char *buf,
                       size_t size, clxent_dtype x, clxent_dtype y, int tgt) {
    snprintf(buf, size,
             "-DX_T=%d -DY_T=%d -DTGT=%d -DVEC=%u -DKT=%u -DPREFETCH=%d",
             clx_store_code(x), clx_store_code(y), tgt, vec, s->d.kt,
             (int)PV(s, nd_prefetch));
}

unsigned clx_nd_vec(const clx_opencl_state *s, size_t I) {
    unsigned best = s->d.vec;
    if (best < 2 || !PV(s, nd_narrow)) return best;
    /* An inner extent's items cost, in eighths of a whole vector's: a
     * tail, lane by lane, 2 + v/8 whole ones (measured 2-6x on PoCL and
     * Intel, more for wider vectors); in pieces 1 + v/32 (Intel: a tail
     * of 8 at VEC 16 1.4x a whole 8, one of 12 0.6x three whole 4s); a
     * tie keeps the wider. */
    int pieces = PV(s, nd_tail_pieces) != 0;
    size_t best_cost = (size_t)-1;
    for (unsigned v = best; v >= 4; v /= 2) {
        size_t tail = pieces ? 8 + v / 4 : 16 + v;
        size_t cost = 8 * (I / v) + (I % v ? tail : 0);
        if (cost < best_cost) best_cost = cost, best = v;
    }
    return best;
}

size_t clx_scr_part_index(size_t R) {
    return CLX_SCR_LOSS + (R + 7) / 8 * 8;
}
