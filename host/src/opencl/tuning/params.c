/* The parameter list of params.h as data: names, ranges, defaults. */
#include "params.h"

#include <string.h>

const clx_param_info clx_param_infos[CLX_PARAM_COUNT] = {
#define CLX_PARAM_INFO_(name, kind, lo, hi, cpu, gpu, text)                    \
    {#name, kind, lo, hi, cpu, gpu, text},
    CLX_PARAM_LIST(CLX_PARAM_INFO_)
#undef CLX_PARAM_INFO_
};

int clx_param_find(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < CLX_PARAM_COUNT; ++i)
        if (strcmp(clx_param_infos[i].name, name) == 0) return i;
    return -1;
}

const char *clx_param_check(int id, int64_t v) {
    if (id < 0 || id >= CLX_PARAM_COUNT) return "no such parameter";
    const clx_param_info *p = &clx_param_infos[id];
    switch (p->kind) {
    case CLX_PK_VEC:
        return v == 1 || v == 4 || v == 8 || v == 16
                   ? NULL
                   : "must be 1, 4, 8 or 16";
    case CLX_PK_POW2:
        if (v != 0 && (v & (v - 1)) != 0)
            return "must be 0 or a power of two";
        if (v == 0 && p->lo > 0) return "must be a power of two";
        break;
    case CLX_PK_INT: break;
    }
    if (v < p->lo || v > p->hi) return "is out of range";
    if (id == CLX_P_regs_ck && v != 0 && v != 16 && v != 32 && v != 64)
        return "must be 0, 16, 32 or 64";
    return NULL;
}

void clx_params_defaults(clx_params *p, int gpu) {
    for (int i = 0; i < CLX_PARAM_COUNT; ++i)
        p->v[i] = gpu ? clx_param_infos[i].gpu_default
                      : clx_param_infos[i].cpu_default;
}
