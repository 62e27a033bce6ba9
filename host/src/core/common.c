/* Pieces every other file uses: version, status texts, data types, error
 * recording, the fault-injection seam, size arithmetic, f16/bf16. */
#include "core/internal.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *clxent_version(void) { return CLXENT_VERSION_STRING; }

const char *clxent_status_string(clxent_status status) {
    switch (status) {
#define CASE_(name, code, text)                                                \
    case CLXENT_STATUS_##name:                                                 \
        return text;
        CLXENT_STATUS_LIST(CASE_)
#undef CASE_
    }
    return "unknown status";
}

const char *clxent_status_name(clxent_status status) {
    switch (status) {
#define CASE_(name, code, text)                                                \
    case CLXENT_STATUS_##name:                                                 \
        return "CLXENT_STATUS_" #name;
        CLXENT_STATUS_LIST(CASE_)
#undef CASE_
    }
    return "CLXENT_STATUS_UNKNOWN";
}

size_t clxent_dtype_size(clxent_dtype dtype) {
    switch (dtype) {
    case CLXENT_F32: return 4;
    case CLXENT_F16: return 2;
    case CLXENT_BF16: return 2;
    case CLXENT_I32: return 4;
    case CLXENT_I64: return 8;
    }
    return 0;
}

const char *clxent_dtype_name(clxent_dtype dtype) {
    switch (dtype) {
    case CLXENT_F32: return "f32";
    case CLXENT_F16: return "f16";
    case CLXENT_BF16: return "bf16";
    case CLXENT_I32: return "i32";
    case CLXENT_I64: return "i64";
    }
    return "unknown";
}

void clxent_loss_options_init(clxent_loss_options *options) {
    if (options) {
        clxent_loss_options d = CLXENT_LOSS_OPTIONS_INIT;
        *options = d;
    }
}

void clxent_options_init(clxent_options *options) {
    if (options) {
        clxent_options d = CLXENT_OPTIONS_INIT;
        *options = d;
    }
}

/* ---- errors ---- */

clxent_status clx_fail(clxent_context *ctx, clxent_status status,
                       const char *function, const char *format, ...) {
    if (!ctx) return status;
    int n = snprintf(ctx->message, sizeof ctx->message, "%s: ",
                     function ? function : "clxent");
    if (n < 0) n = 0;
    if ((size_t)n < sizeof ctx->message) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(ctx->message + n, sizeof ctx->message - (size_t)n, format,
                  ap);
        va_end(ap);
    }
    return status;
}

void clx_append(clxent_context *ctx, const char *format, ...) {
    if (!ctx) return;
    size_t used = strlen(ctx->message);
    if (used + 1 >= sizeof ctx->message) return;
    va_list ap;
    va_start(ap, format);
    vsnprintf(ctx->message + used, sizeof ctx->message - used, format, ap);
    va_end(ap);
}

void clx_clear(clxent_context *ctx) {
    if (ctx) ctx->message[0] = '\0';
}

const char *clx_cl_error_name(cl_int code) {
    switch (code) {
#define E_(x)                                                                  \
    case x:                                                                    \
        return #x;
        E_(CL_SUCCESS) E_(CL_DEVICE_NOT_FOUND) E_(CL_DEVICE_NOT_AVAILABLE)
        E_(CL_COMPILER_NOT_AVAILABLE) E_(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        E_(CL_OUT_OF_RESOURCES) E_(CL_OUT_OF_HOST_MEMORY)
        E_(CL_PROFILING_INFO_NOT_AVAILABLE) E_(CL_MEM_COPY_OVERLAP)
        E_(CL_IMAGE_FORMAT_MISMATCH) E_(CL_IMAGE_FORMAT_NOT_SUPPORTED)
        E_(CL_BUILD_PROGRAM_FAILURE) E_(CL_MAP_FAILURE)
        E_(CL_MISALIGNED_SUB_BUFFER_OFFSET)
        E_(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
        E_(CL_COMPILE_PROGRAM_FAILURE) E_(CL_LINKER_NOT_AVAILABLE)
        E_(CL_LINK_PROGRAM_FAILURE) E_(CL_DEVICE_PARTITION_FAILED)
        E_(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) E_(CL_INVALID_VALUE)
        E_(CL_INVALID_DEVICE_TYPE) E_(CL_INVALID_PLATFORM)
        E_(CL_INVALID_DEVICE) E_(CL_INVALID_CONTEXT)
        E_(CL_INVALID_QUEUE_PROPERTIES) E_(CL_INVALID_COMMAND_QUEUE)
        E_(CL_INVALID_HOST_PTR) E_(CL_INVALID_MEM_OBJECT)
        E_(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) E_(CL_INVALID_IMAGE_SIZE)
        E_(CL_INVALID_SAMPLER) E_(CL_INVALID_BINARY)
        E_(CL_INVALID_BUILD_OPTIONS) E_(CL_INVALID_PROGRAM)
        E_(CL_INVALID_PROGRAM_EXECUTABLE) E_(CL_INVALID_KERNEL_NAME)
        E_(CL_INVALID_KERNEL_DEFINITION) E_(CL_INVALID_KERNEL)
        E_(CL_INVALID_ARG_INDEX) E_(CL_INVALID_ARG_VALUE)
        E_(CL_INVALID_ARG_SIZE) E_(CL_INVALID_KERNEL_ARGS)
        E_(CL_INVALID_WORK_DIMENSION) E_(CL_INVALID_WORK_GROUP_SIZE)
        E_(CL_INVALID_WORK_ITEM_SIZE) E_(CL_INVALID_GLOBAL_OFFSET)
        E_(CL_INVALID_EVENT_WAIT_LIST) E_(CL_INVALID_EVENT)
        E_(CL_INVALID_OPERATION) E_(CL_INVALID_GL_OBJECT)
        E_(CL_INVALID_BUFFER_SIZE) E_(CL_INVALID_MIP_LEVEL)
        E_(CL_INVALID_GLOBAL_WORK_SIZE) E_(CL_INVALID_PROPERTY)
        E_(CL_INVALID_IMAGE_DESCRIPTOR) E_(CL_INVALID_COMPILER_OPTIONS)
        E_(CL_INVALID_LINKER_OPTIONS) E_(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef E_
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "CL_UNKNOWN_ERROR";
}

clxent_status clx_status_from_cl(cl_int code) {
    switch (code) {
    case CL_SUCCESS: return CLXENT_STATUS_OK;
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_OUT_OF_HOST_MEMORY:
    case CL_INVALID_BUFFER_SIZE: return CLXENT_STATUS_OUT_OF_MEMORY;
    case CL_BUILD_PROGRAM_FAILURE: return CLXENT_STATUS_BUILD_FAILED;
    case CL_DEVICE_NOT_FOUND:
    case -1001: return CLXENT_STATUS_DEVICE_NOT_FOUND;
    default: return CLXENT_STATUS_OPENCL_ERROR;
    }
}

/* ---- fault injection seam ---- */

static _Thread_local long fault_countdown; /* 0: disarmed */
static _Thread_local long fault_calls;

void clx_fault_arm(long k) {
    fault_countdown = k;
    fault_calls = 0;
}

long clx_fault_calls(void) { return fault_calls; }

int clx_fault_next(void) {
    ++fault_calls;
    if (fault_countdown <= 0) return 0;
    if (--fault_countdown == 0) return 1;
    return 0;
}

/* ---- sizes ---- */

int clx_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int clx_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

/* ---- 16-bit float storage, round to nearest even ---- */

uint16_t clxent_f32_to_bf16(float value) {
    uint32_t u;
    memcpy(&u, &value, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float clxent_bf16_to_f32(uint16_t bits) {
    uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t clxent_f32_to_f16(float value) {
    uint32_t u;
    memcpy(&u, &value, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u); /* NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* inf */
    if (abs < 0x38800000u) { /* subnormal or zero in f16 */
        float f;
        memcpy(&f, &abs, 4);
        /* f * 2^24 rounded to nearest even gives the subnormal mantissa */
        float scaled = f * 16777216.0f;
        uint32_t m = (uint32_t)scaled;
        float rest = scaled - (float)m;
        if (rest > 0.5f || (rest == 0.5f && (m & 1u))) ++m;
        return (uint16_t)(sign | m);
    }
    uint32_t mant = abs & 0x7fffffu;
    uint32_t exp = (abs >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return (uint16_t)(sign | h);
}

float clxent_f16_to_f32(uint16_t bits) {
    uint32_t sign = (uint32_t)(bits & 0x8000u) << 16;
    uint32_t exp = (bits >> 10) & 0x1fu;
    uint32_t mant = bits & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        float f = (float)mant * (1.0f / 16777216.0f);
        memcpy(&u, &f, 4);
        u |= sign;
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float clx_load_float(const void *base, clxent_dtype dtype, size_t index) {
    const unsigned char *p = base;
    if (dtype == CLXENT_F32) {
        float f;
        memcpy(&f, p + 4 * index, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * index, 2);
    return dtype == CLXENT_F16 ? clxent_f16_to_f32(h) : clxent_bf16_to_f32(h);
}

void clx_store_float(void *base, clxent_dtype dtype, size_t index, float v) {
    unsigned char *p = base;
    if (dtype == CLXENT_F32) {
        memcpy(p + 4 * index, &v, 4);
        return;
    }
    uint16_t h = dtype == CLXENT_F16 ? clxent_f32_to_f16(v)
                                     : clxent_f32_to_bf16(v);
    memcpy(p + 2 * index, &h, 2);
}

void clx_store_double(void *base, clxent_dtype dtype, size_t index,
                      double v) {
    float f = (float)v;
    if (dtype != CLXENT_F32 && (double)f != v && !isnan(v)) {
        /* Round to odd: of the two floats around v take the one with an
         * odd last bit. Rounding that to 11 or 8 significant bits is then
         * the correct rounding of v itself. */
        uint32_t u;
        memcpy(&u, &f, 4);
        if (!(u & 1u)) f = nextafterf(f, v > (double)f ? INFINITY : -INFINITY);
    }
    clx_store_float(base, dtype, index, f);
}

int64_t clx_load_index(const void *base, clxent_dtype dtype, size_t index) {
    const unsigned char *p = base;
    if (dtype == CLXENT_I32) {
        int32_t v;
        memcpy(&v, p + 4 * index, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, p + 8 * index, 8);
    return v;
}

/* ---- text ---- */

void clx_appendf(char *dst, size_t size, const char *format, ...) {
    if (!dst || size == 0) return;
    size_t used = strlen(dst);
    if (used + 1 >= size) return;
    va_list ap;
    va_start(ap, format);
    vsnprintf(dst + used, size - used, format, ap);
    va_end(ap);
}

int clx_contains_nocase(const char *haystack, const char *needle) {
    size_t n = strlen(needle);
    if (n == 0) return 1;
    for (; haystack && *haystack; ++haystack) {
        size_t i = 0;
        while (i < n && haystack[i] &&
               tolower((unsigned char)haystack[i]) ==
                   tolower((unsigned char)needle[i]))
            ++i;
        if (i == n) return 1;
    }
    return 0;
}

void clx_position(const clxent_tensor *x, size_t r, char *buf, size_t size) {
    buf[0] = '\0';
    if (x->inner <= 1 && x->inner_rank == 0) return;
    size_t o = r / x->inner, i = r % x->inner;
    if (x->inner_rank == 0) {
        snprintf(buf, size, " at (%zu, %zu)", o, i);
        return;
    }
    size_t idx[CLXENT_MAX_INNER_DIMS];
    for (unsigned k = x->inner_rank; k-- > 0;) {
        size_t d = x->inner_dims[k] ? x->inner_dims[k] : 1;
        idx[k] = i % d;
        i /= d;
    }
    clx_appendf(buf, size, " at (%zu", o);
    for (unsigned k = 0; k < x->inner_rank; ++k)
        clx_appendf(buf, size, ", %zu", idx[k]);
    clx_appendf(buf, size, ")");
}

const clxent_tensor *clx_position_tensor(const clx_op *op) {
    return op->indices.buffer && op->indices.inner_rank ? &op->indices
                                                        : &op->x;
}

int clx_same_position_shape(const clxent_tensor *a, const clxent_tensor *b) {
    if (a->outer != b->outer || a->inner != b->inner ||
        a->inner_rank != b->inner_rank)
        return 0;
    for (unsigned k = 0; k < a->inner_rank; ++k)
        if (a->inner_dims[k] != b->inner_dims[k]) return 0;
    return 1;
}
