/* The host's side of kernels/contract.h: for every argument-list shape a
 * struct clx_a_<shape> whose fields are the kernel's arguments by name,
 * and clx_set_a_<shape>, which sets them in the contract's order. The
 * launch code fills fields by name; the order exists only in contract.h.
 * Buffers are cl_mem, local arrays an element count. */
#ifndef CLXENT_OPENCL_KERNEL_ARGS_H
#define CLXENT_OPENCL_KERNEL_ARGS_H

#include "contract.h"

#include "opencl/runtime/runtime.h"

#define CLX_HT_CX cl_mem
#define CLX_HT_GX cl_mem
#define CLX_HT_GY cl_mem
#define CLX_HT_CIDX cl_mem
#define CLX_HT_CF cl_mem
#define CLX_HT_GF cl_mem
#define CLX_HT_GL cl_mem
#define CLX_HT_CU cl_mem
#define CLX_HT_GU cl_mem
#define CLX_HT_ULONG size_t
#define CLX_HT_UINT size_t
#define CLX_HT_INT int
#define CLX_HT_LONG int64_t
#define CLX_HT_FLOAT float
#define CLX_HT_LST size_t
#define CLX_HT_LCHK size_t
#define CLX_HT_LF size_t

#define CLX_HS_CX(a, v) clx_arg_mem(a, v)
#define CLX_HS_GX(a, v) clx_arg_mem(a, v)
#define CLX_HS_GY(a, v) clx_arg_mem(a, v)
#define CLX_HS_CIDX(a, v) clx_arg_mem(a, v)
#define CLX_HS_CF(a, v) clx_arg_mem(a, v)
#define CLX_HS_GF(a, v) clx_arg_mem(a, v)
#define CLX_HS_GL(a, v) clx_arg_mem(a, v)
#define CLX_HS_CU(a, v) clx_arg_mem(a, v)
#define CLX_HS_GU(a, v) clx_arg_mem(a, v)
#define CLX_HS_ULONG(a, v) clx_arg_ulong(a, v)
#define CLX_HS_UINT(a, v) clx_arg_uint(a, v)
#define CLX_HS_INT(a, v) clx_arg_int(a, v)
#define CLX_HS_LONG(a, v) clx_arg_long(a, v)
#define CLX_HS_FLOAT(a, v) clx_arg_float(a, v)
#define CLX_HS_LST(a, v) clx_arg_local(a, (v) * (size_t)CLX_ST_BYTES)
#define CLX_HS_LCHK(a, v) clx_arg_local(a, (v) * (size_t)CLX_CHK_BYTES)
#define CLX_HS_LF(a, v) clx_arg_local(a, (v) * sizeof(cl_float))

#define CLX_HNOSEP()
#define CLX_HFIELD(type, name) CLX_HT_##type name;
#define CLX_HSET(type, name) CLX_HS_##type(a, v->name);
#define CLX_HCOUNT(type, name) +1

/* Groups: struct clx_g_<group> and clx_set_g_<group>. */
#define CLX_HDEFINE_GROUP(group)                                               \
    typedef struct clx_g_##group {                                             \
        CLX_G_##group(CLX_HFIELD, CLX_HNOSEP)                                  \
    } clx_g_##group;                                                           \
    static inline void clx_set_g_##group(clx_args *a,                          \
                                         const clx_g_##group *v) {             \
        CLX_G_##group(CLX_HSET, CLX_HNOSEP)                                    \
    }
CLX_HDEFINE_GROUP(xent)
CLX_HDEFINE_GROUP(out)
CLX_HDEFINE_GROUP(grad)
CLX_HDEFINE_GROUP(sm)
CLX_HDEFINE_GROUP(nd)
CLX_HDEFINE_GROUP(ndgrad)

/* Shapes: a group is a member of that name. */
#define CLX_HGFIELD(group) clx_g_##group group;
#define CLX_HGSET(group) clx_set_g_##group(a, &v->group);
#define CLX_HGCOUNT(group) CLX_G_##group(CLX_HCOUNT, CLX_HNOSEP)
#define CLX_HDEFINE_SHAPE(shape)                                               \
    typedef struct clx_a_##shape {                                             \
        CLX_A_##shape(CLX_HGFIELD, CLX_HFIELD, CLX_HNOSEP)                     \
    } clx_a_##shape;                                                           \
    static inline void clx_set_a_##shape(clx_args *a,                          \
                                         const clx_a_##shape *v) {             \
        CLX_A_##shape(CLX_HGSET, CLX_HSET, CLX_HNOSEP)                         \
    }
CLX_SHAPE_LIST(CLX_HDEFINE_SHAPE)

/* The number of arguments of a shape (tests compare it with the kernel's
 * CL_KERNEL_NUM_ARGS). */
#define CLX_SHAPE_ARG_COUNT(shape)                                             \
    (0 CLX_A_##shape(CLX_HGCOUNT, CLX_HCOUNT, CLX_HNOSEP))

#endif /* CLXENT_OPENCL_KERNEL_ARGS_H */
